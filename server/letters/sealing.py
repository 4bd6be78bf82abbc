"""Sealing a rendered letter with the agency's PAdES signature (pyHanko).

The seal is a certifying signature (DocMDP "no changes"): any later revision of the
file — even one a PDF editor calls harmless — makes verification report it as modified.
The PDF already carries the signers' images and the audit page, so the seal covers
everything a reader sees.

pyHanko's signing is CPU work (hashing the file, one ECDSA signature) and runs its own
event loop, so ``seal`` runs it in a worker thread; the service's loop keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from server.letters.pki import SealMaterial

SEAL_FIELD = "YunkanSeal"


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
    meta = signers.PdfSignatureMetadata(
        field_name=SEAL_FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
        reason=reason,
        location=location,
        name=material.subject,
    )
    out = signers.PdfSigner(meta, _signer(material)).sign_pdf(writer)
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
