from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from server.letters import pdf, pki, sealing, verification
from server.letters.verification import VerificationError
from tests.letters.sample import sample_document


@pytest.fixture(scope="module")
def sealed(seal_material: pki.SealMaterial) -> bytes:
    return sealing.seal_sync(pdf.render_sync(sample_document()), seal_material).data


def test_dev_pki_is_created_once_and_reused(data_dir: Path) -> None:
    first = pki.load_or_create(data_dir)
    again = pki.load_or_create(data_dir)
    assert first.signing_cert.sha256 == again.signing_cert.sha256
    assert (data_dir / "pki" / "ca.pem").is_file()
    assert os.stat(data_dir / "pki" / "seal.p12").st_mode & 0o077 == 0
    assert "Document Seal" in first.subject


async def test_concurrent_first_starts_agree(data_dir: Path) -> None:
    results = await asyncio.gather(
        *(asyncio.to_thread(pki.load_or_create, data_dir) for _ in range(4))
    )
    assert len({m.signing_cert.sha256 for m in results}) == 1
    names = [p.name for p in await asyncio.to_thread(lambda: list(data_dir.iterdir()))]
    assert names == ["pki"]  # no temporary directories left


def test_configured_pkcs12_with_password(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        pkcs12,
    )

    _ca, plain = pki.generate_dev_pki("Configured Agency")
    key, cert, extra = pkcs12.load_key_and_certificates(plain, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and cert is not None
    path = tmp_path / "agency.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x",
            key,
            cert,
            extra,
            BestAvailableEncryption(b"s3cret"),
        )
    )
    material = pki.load_or_create(tmp_path, p12_path=path, p12_password="s3cret")
    assert "Configured Agency" in material.subject
    with pytest.raises(pki.PkiError):
        pki.load_or_create(tmp_path, p12_path=path, p12_password="wrong")
    with pytest.raises(pki.PkiError):
        pki.load_or_create(tmp_path, p12_path=tmp_path / "missing.p12")


def test_pyhanko_validates_against_dev_ca(sealed: bytes, seal_material: pki.SealMaterial) -> None:
    reader = PdfFileReader(io.BytesIO(sealed))
    (sig,) = reader.embedded_signatures
    context = ValidationContext(trust_roots=list(seal_material.trust_roots))
    status = validate_pdf_signature(sig, context)
    assert status.bottom_line and status.trusted and status.intact
    assert status.docmdp_ok


def test_verdict_for_our_seal(sealed: bytes, seal_material: pki.SealMaterial) -> None:
    verdict = verification.verify_sync(sealed, seal_material)
    assert verdict.valid and verdict.sealed_by_agency and verdict.problem is None
    assert "Document Seal" in verdict.certificate


def test_one_byte_change_in_signed_range_is_invalid(
    sealed: bytes, seal_material: pki.SealMaterial
) -> None:
    start = sealed.index(b"/Contents <")
    end = sealed.index(b">", start)
    # Sample positions across the file, both in the signed ranges and in the CMS blob.
    positions = [*range(0, len(sealed), len(sealed) // 24), start + 40, end - 3]
    original = verification.verify_sync(sealed, seal_material).sha256
    for position in positions:
        forged = bytearray(sealed)
        forged[position] ^= 0x01
        try:
            verdict = verification.verify_sync(bytes(forged), seal_material)
        except VerificationError:
            continue  # broken beyond parsing: refused, also fine
        in_cms = start < position < end
        # Outside the CMS blob every change breaks the seal; inside it, the whole-file
        # hash (compared with the held letter by the API) catches unsigned CMS fields.
        if not in_cms:
            assert not verdict.valid, position
        assert verdict.sha256 != original


def test_other_certificate_is_reported(
    seal_material: pki.SealMaterial, other_material: pki.SealMaterial
) -> None:
    foreign = sealing.seal_sync(pdf.render_sync(sample_document()), other_material).data
    verdict = verification.verify_sync(foreign, seal_material)
    assert verdict.intact and not verdict.trusted and not verdict.valid
    assert not verdict.sealed_by_agency
    assert verdict.problem == "untrusted_certificate"
    assert "Some Other Agency" in verdict.certificate


def test_appended_revision_is_reported(sealed: bytes, seal_material: pki.SealMaterial) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    writer.root["/Yunkan"] = generic.NameObject("/Changed")
    writer.update_root()  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    verdict = verification.verify_sync(out.getvalue(), seal_material)
    assert verdict.intact and verdict.trusted and not verdict.unmodified and not verdict.valid
    assert verdict.problem == "modified_after_sealing"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda s: b"hello, not a pdf", "not_a_pdf"),
        (lambda s: b"", "not_a_pdf"),
        (lambda s: s[: len(s) // 2], "pdf_damaged"),
        (lambda s: s[:200] + b"\0" * 500 + s[-100:], "pdf_damaged"),
        (lambda s: b"%PDF-1.7\n" + b"x" * (verification.MAX_PDF_BYTES), "pdf_too_large"),
        (lambda s: pdf.render_sync(sample_document(signed=False)), "pdf_unsigned"),
    ],
)
async def test_bad_uploads_get_error_codes(
    sealed: bytes, seal_material: pki.SealMaterial, make: object, code: str
) -> None:
    data = make(sealed)  # type: ignore[operator]
    with pytest.raises(VerificationError) as info:
        await verification.verify(data, seal_material)
    assert info.value.code == code


def test_cms_blob_must_be_strict_der_with_zero_padding() -> None:
    strict = verification._strict_der
    good = bytes.fromhex("3006020101020102")  # SEQUENCE { INTEGER 1, INTEGER 2 }
    assert strict(good + b"\0" * 8)
    assert not strict(good + b"\0\1")  # a changed padding byte
    assert not strict(bytes.fromhex("308106020101020102"))  # non-minimal length
    assert not strict(bytes.fromhex("308002010102010000"))  # indefinite length
    assert not strict(bytes.fromhex("3007020101020102"))  # children do not fill the parent
    assert not strict(bytes.fromhex("30060201010202"))  # truncated
