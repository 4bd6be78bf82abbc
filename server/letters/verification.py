"""Checking a PDF someone uploads: is it a letter this agency sealed, unchanged?

The answer separates the questions a citizen or a court clerk actually asks:

- ``intact``: the bytes covered by the seal hash to what was signed (one changed byte
  anywhere in the signed range makes this false);
- ``trusted``: the sealing certificate chains to *our* trust root (a PDF sealed by some
  other certificate is intact but not trusted, and ``certificate`` names who sealed it);
- ``unmodified``: nothing was appended after the seal (the seal covers the entire file
  and the DocMDP "no changes" rule holds), except the validation data PAdES B-LT adds
  in its own revision (DSS: certificates, CRLs, OCSP responses), which pyHanko's
  difference analysis classifies as ``LTA_UPDATES`` and nothing else;
- ``valid`` is all three.

Also reported: ``timestamp`` (the TSA's time from the signature timestamp, B-T) and
``long_term`` (a DSS with validation data is present, B-LT).

Input that is not a PDF at all is refused with an error code rather than a "valid: false"
result, so that an API client can tell "your file is broken" from "your file is forged":

    VerificationError (422 unless noted)
     ├── PdfTooLargeError    pdf_too_large (413)  more than MAX_PDF_BYTES
     ├── NotAPdfError        not_a_pdf            no %PDF- header
     ├── DamagedPdfError     pdf_damaged          truncated or unparseable
     └── UnsignedPdfError    pdf_unsigned         a PDF without any signature

The parse and the cryptography run in a worker thread (pyHanko uses its own loop).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.cases.models import Case
from server.letters.documents import role_label
from server.letters.errors import LetterError
from server.letters.models import Letter, LetterSignature
from server.letters.pki import SealMaterial
from server.letters.sealing import SEAL_FIELD

MAX_PDF_BYTES = 10 * 1024 * 1024
"""Our letters are 100–500 KB; ten megabytes leaves room and bounds the parse work."""


class VerificationError(LetterError):
    status = 422
    code = "verification_failed"
    message = "The file could not be verified"


class PdfTooLargeError(VerificationError):
    status = 413
    code = "pdf_too_large"
    message = "The file is too large to be a sealed letter"


class NotAPdfError(VerificationError):
    code = "not_a_pdf"
    message = "The file is not a PDF document"


class DamagedPdfError(VerificationError):
    code = "pdf_damaged"
    message = "The PDF is damaged or truncated"


class UnsignedPdfError(VerificationError):
    code = "pdf_unsigned"
    message = "The PDF carries no digital signature"


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    intact: bool
    trusted: bool
    unmodified: bool
    certificate: str  # subject of the certificate that sealed the file
    issuer: str
    sealed_by_agency: bool  # the certificate is this deployment's seal certificate
    signed_at: dt.datetime | None  # as reported by the signer (not a timestamp authority)
    sha256: str  # of the whole uploaded file, to look the letter up
    problem: str | None  # machine-readable reason when not valid
    timestamp: dt.datetime | None = None  # the TSA's time (PAdES B-T), if any
    long_term: bool = False  # validation data in the DSS (PAdES B-LT)

    def as_json(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "intact": self.intact,
            "trusted": self.trusted,
            "unmodified": self.unmodified,
            "certificate": self.certificate,
            "issuer": self.issuer,
            "sealed_by_agency": self.sealed_by_agency,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "sha256": self.sha256,
            "problem": self.problem,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "long_term": self.long_term,
        }


def _precheck(data: bytes) -> None:
    if len(data) > MAX_PDF_BYTES:
        raise PdfTooLargeError(details={"max_bytes": MAX_PDF_BYTES})
    # The header may follow up to 1024 bytes of junk per the spec; readers accept that.
    if b"%PDF-" not in data[:1024]:
        raise NotAPdfError()
    if b"%%EOF" not in data[-2048:]:
        raise DamagedPdfError()


def _der_end(raw: bytes, pos: int, depth: int = 0) -> int:
    """End offset of the DER element at ``pos``; raises ValueError on anything BER allows
    but DER forbids (indefinite or non-minimal lengths, high tag numbers, overruns)."""
    if depth > 64 or pos + 2 > len(raw):
        raise ValueError("truncated")
    tag, first = raw[pos], raw[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag number")  # none in CMS signatures
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(raw):
            raise ValueError("bad length")
        length = int.from_bytes(raw[pos : pos + count], "big")
        if length < 0x80 or raw[pos] == 0:
            raise ValueError("non-minimal length")
        pos += count
    end = pos + length
    if end > len(raw):
        raise ValueError("overrun")
    if tag & 0x20:  # constructed: the children must fill it exactly
        child = pos
        while child < end:
            child = _der_end(raw, child, depth + 1)
        if child != end:
            raise ValueError("children overrun")
    return end


def _strict_der(raw: bytes) -> bool:
    """True when the CMS blob is well-formed DER (checked structurally, every level)
    followed by zero padding only.

    Parts of the CMS structure (version, certificate set, tag and length encodings) are
    outside the signed attributes and asn1crypto parses leniently, so a flipped byte there
    would not break the signature. This closes the encoding-level gaps; value-level changes
    to unsigned fields are caught by comparing the file's hash with the documents on record.
    """
    try:
        end = _der_end(raw, 0)
    except ValueError:
        return False
    return not any(raw[end:])


def verify_sync(data: bytes, material: SealMaterial) -> Verdict:
    """Verify ``data`` against the deployment's trust roots; blocking."""
    _precheck(data)
    sha = hashlib.sha256(data).hexdigest()
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = reader.embedded_signatures
    except Exception as exc:  # pyHanko's parser raises many types on junk
        raise DamagedPdfError() from exc
    if not sigs:
        raise UnsignedPdfError()
    # Prefer our seal field; a foreign PDF is judged by its last signature.
    sig = next((s for s in sigs if s.field_name == SEAL_FIELD), sigs[-1])
    context = ValidationContext(
        trust_roots=list(material.trust_roots),
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    try:
        cert = sig.signer_cert
        status = validate_pdf_signature(sig, context)
    except Exception:  # a forged CMS blob can fail anywhere inside
        # A flipped byte inside the CMS blob makes it unparseable: the seal is broken.
        return Verdict(
            valid=False,
            intact=False,
            trusted=False,
            unmodified=False,
            certificate="",
            issuer="",
            sealed_by_agency=False,
            signed_at=None,
            sha256=sha,
            problem="signature_corrupt",
        )
    # Bytes after the CMS blob inside /Contents are zero padding outside the signed range;
    # readers ignore them, but a changed byte there is still a changed file.
    raw = bytes(sig.pkcs7_content)
    padding_clean = _strict_der(raw)
    intact = bool(status.intact and status.valid and padding_clean)
    trusted = bool(status.trusted)
    coverage = status.coverage.name if status.coverage is not None else ""
    # B-LT appends the DSS in a revision of its own; that and only that is allowed.
    ltv_only = (
        coverage == "ENTIRE_REVISION"
        and status.modification_level is not None
        and status.modification_level <= ModificationLevel.LTA_UPDATES
    )
    unmodified = (coverage == "ENTIRE_FILE" or ltv_only) and status.docmdp_ok is not False
    stamp = status.timestamp_validity
    timestamp = stamp.timestamp if stamp is not None and stamp.intact and stamp.valid else None
    try:
        long_term = "/DSS" in reader.root
    except Exception:  # a damaged catalogue is reported by the checks above
        long_term = False
    problem = None
    if not intact:
        problem = "content_changed"
    elif not trusted:
        problem = "untrusted_certificate"
    elif not unmodified:
        problem = "modified_after_sealing"
    return Verdict(
        valid=intact and trusted and unmodified,
        intact=intact,
        trusted=trusted,
        unmodified=unmodified,
        certificate=str(cert.subject.human_friendly),
        issuer=str(cert.issuer.human_friendly),
        sealed_by_agency=cert.sha256 == material.signing_cert.sha256,
        signed_at=status.signer_reported_dt,
        sha256=sha,
        problem=problem,
        timestamp=timestamp,
        long_term=long_term,
    )


async def verify(data: bytes, material: SealMaterial) -> Verdict:
    """Verify in a worker thread; cheap checks first so junk costs nothing."""
    _precheck(data)
    return await asyncio.to_thread(verify_sync, data, material)


# ---- the status of a document as the QR code names it ------------------------------------

KIND_TITLES = {"commitment": "commitment letter", "record": "inspection record"}


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小明 -> 张*明: a signer recognises themself, a stranger learns nothing."""
    if len(name) <= 2:
        return name[:1] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def status_at(signers: int, signed: int) -> str:
    """A version's own status, from how many of its signers had signed when it was
    rendered: an earlier PDF is judged as it was, never by the letter's current state."""
    if signers and signed >= signers:
        return "signed"
    return "partially_signed" if signed else "issued"


async def document_status(
    session: AsyncSession, letter_id: int, version: int | None = None
) -> dict[str, Any] | None:
    """What the QR code's ``/verify?letter=ID[&version=N]`` shows without an upload:
    number, version, state, masked signers, the current PDF's hash, and whether a newer
    version replaced it. No names in full, no mobile, no body text: the page is public
    and letter ids are sequential, so anyone can walk them."""
    letter = await session.get(Letter, letter_id)
    if letter is None:
        return None
    if version is not None and version != letter.version:
        letter = await session.scalar(
            select(Letter).where(
                Letter.case_id == letter.case_id,
                Letter.kind == letter.kind,
                Letter.version == version,
            )
        )
        if letter is None:
            return None
    case = await session.get(Case, letter.case_id)
    newest = await session.scalar(
        select(func.max(Letter.version)).where(
            Letter.case_id == letter.case_id, Letter.kind == letter.kind
        )
    )
    rows = await session.scalars(
        select(LetterSignature).where(LetterSignature.letter_id == letter.id)
    )
    by_position = {s.position: s for s in rows}
    signers = []
    for position, signer in enumerate(letter.signers):
        signature = by_position.get(position)
        signers.append(
            {
                "name": mask_name(str(signer["name"])),
                "role_label": role_label(str(signer["role"])),
                "signed": signature is not None,
                "signed_at": signature.signed_at if signature else None,
            }
        )
    superseded = letter.status == "superseded" or letter.superseded_by_id is not None
    return {
        "letter_id": letter.id,
        "case_number": case.number if case else "",
        "kind": letter.kind,
        "kind_title": KIND_TITLES.get(letter.kind, letter.kind),
        "title": letter.title,
        "version": letter.version,
        "latest_version": int(newest or letter.version),
        "status": letter.status,
        "superseded": superseded,
        "superseded_by_id": letter.superseded_by_id,
        "signers": signers,
        "pdf_sha256": letter.pdf_sha256,
        "issued_at": letter.issued_at,
    }
