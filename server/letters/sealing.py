"""Sealing a rendered letter with the agency's PAdES signature (pyHanko).

The seal is a certifying signature (DocMDP "no changes"): any later revision of the
file — even one a PDF editor calls harmless — makes verification report it as modified.
The PDF already carries the signers' images and the audit page, so the seal covers
everything a reader sees.

Levels (ETSI EN 319 142-1):

* **B-B** without a timestamp authority (``YUNKAN_TSA_URL`` empty): the seal time is
  the time our server claims.
* **B-T** with a TSA: the CMS signature carries an RFC 3161 signature timestamp, so the
  seal provably existed at the TSA's time.
* **B-LT** on top, when the certificates say where their revocation status is (CRL
  distribution points, OCSP in AIA): pyHanko fetches the CRLs/OCSP responses for the
  seal and TSA chains and writes them with the certificates into the document security
  store (DSS) in an incremental update after the signature. PAdES allows exactly that
  update under DocMDP "no changes"; verification accepts it and nothing else. The
  development PKI has no such URLs, so a dev deployment with a TSA gets B-T and no DSS
  revocation data (revocation is soft-fail: an unreachable CRL leaves B-T, not an
  error). A TSA that cannot be reached fails the seal (and so the issue or signature
  that asked for it): a letter is never silently sealed at a lower level than configured.

The signature field is visible: the agency's red round seal (``stamp.seal_image``) at
the bottom right of the last page.

pyHanko's signing is CPU work (hashing the file, one ECDSA signature) and runs its own
event loop, so ``seal`` runs it in a worker thread; the service's loop keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass

from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from server import timestamps
from server.letters.pki import SealMaterial
from server.letters.stamp import seal_image

SEAL_FIELD = "YunkanSeal"
SEAL_BOX = (425, 48, 545, 168)
"""Where the visible seal sits on the last page, in PDF points (A4 is 595 x 842): a
120 pt (42 mm) circle at the bottom right, like a stamp under the text it confirms."""


@dataclass(frozen=True, slots=True)
class SealedPdf:
    data: bytes
    sha256: str
    certificate: str  # subject of the sealing certificate, human friendly


def _signer(material: SealMaterial) -> signers.SimpleSigner:
    registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]
    registry.register_multiple(material.chain)
    return signers.SimpleSigner(
        signing_cert=material.signing_cert,
        signing_key=material.signing_key,
        cert_registry=registry,
        # Certificates in the CMS blob lie outside the signed attributes; only the signing
        # certificate is bound by its ESS hash. Shipping the root too would leave bytes a
        # forger could flip without breaking the seal; verifiers have the root anyway.
        embed_roots=False,
    )


def seal_sync(
    pdf: bytes,
    material: SealMaterial,
    *,
    reason: str = "Sealed by the agency",
    location: str | None = None,
) -> SealedPdf:
    """Seal ``pdf`` (an unsigned PDF from ``server.letters.pdf``); blocking."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    stamper = timestamps.from_url(material.tsa_url)
    long_term = stamper is not None
    meta = signers.PdfSignatureMetadata(
        field_name=SEAL_FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
        reason=reason,
        location=location,
        name=material.subject,
        embed_validation_info=long_term,
        validation_context=ValidationContext(
            trust_roots=list(material.trust_roots),
            allow_fetching=True,
            revocation_mode="soft-fail",
        )
        if long_term
        else None,
    )
    style = StaticStampStyle(
        border_width=0,
        background=PdfImage(seal_image(material.agency_name or location or "")),
        background_opacity=0.9,
    )
    out = signers.PdfSigner(
        meta,
        _signer(material),
        timestamper=stamper.for_pyhanko() if stamper is not None else None,
        stamp_style=style,
        new_field_spec=fields.SigFieldSpec(SEAL_FIELD, on_page=-1, box=SEAL_BOX),
    ).sign_pdf(writer)
    data = out.getvalue()
    return SealedPdf(
        data=data, sha256=hashlib.sha256(data).hexdigest(), certificate=material.subject
    )


async def seal(
    pdf: bytes,
    material: SealMaterial,
    *,
    reason: str = "Sealed by the agency",
    location: str | None = None,
) -> SealedPdf:
    """Seal in a worker thread (pyHanko runs its own event loop inside)."""
    return await asyncio.to_thread(seal_sync, pdf, material, reason=reason, location=location)
