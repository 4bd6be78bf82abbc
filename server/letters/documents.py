"""From letter rows to a sealed PDF blob: the one path every rendering takes.

Issuing and each signature both end here: build the ``LetterDocument`` from the letter,
its signatures (images read back from the blob store, so the PDF shows exactly the bytes
whose hash is recorded) and its audit events, render, seal, and store the PDF durably.
Only then does the caller commit the rows that point at it, so a row never names a PDF
that is not on disk; a crash in between leaves an unreferenced blob, never a dangling row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from server.letters import pdf, sealing
from server.letters.models import Letter, LetterEvent, LetterSignature
from server.letters.pki import SealMaterial

if TYPE_CHECKING:
    from recordings.blobs import BlobRef

KIND_TITLES = {"commitment": "承诺书", "record": "勘验笔录"}
ROLE_LABELS = {
    "applicant": "申请人",
    "inspector": "勘验人员",
    "supervisor": "勘验人员",
    "admin": "勘验人员",
}
ACTION_LABELS = {
    "issued": "出具并签章",
    "signed": "签署",
    "superseded": "被更正版本取代",
}


class Blobs(Protocol):
    """What we need of ``recordings.blobs.BlobStore``."""

    async def put(self, data: bytes, *, suffix: str = "", kind: str = "blob") -> BlobRef: ...

    async def read(self, key: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LetterContext:
    """Deployment facts a letter needs; built once by the web layer from Settings."""

    blobs: Blobs
    seal: SealMaterial
    timezone: str
    public_url: str
    agency_name: str

    def verify_url(self, letter_id: int) -> str:
        return f"{self.public_url.rstrip('/')}/verify?letter={letter_id}"


@dataclass(frozen=True, slots=True)
class StoredPdf:
    key: str
    sha256: str
    size: int


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def reference(letter: Letter, case_number: str) -> str:
    kind = KIND_TITLES.get(letter.kind, letter.kind)
    return f"{case_number} / {kind} 第{letter.version}版 / #{letter.id}"


SHA_LABELS = {"issued": "正文 SHA-256", "signed": "签名图像 SHA-256"}


def audit_entry(event: LetterEvent, seen_pdf: str | None = None) -> pdf.AuditEntry:
    """``seen_pdf``: hash of the sealed version in force before this event, i.e. the
    document a signer was shown and signed."""
    actor = event.actor_name or "系统"
    if event.actor_role:
        actor = f"{actor}（{role_label(event.actor_role)}）"
    return pdf.AuditEntry(
        at=event.at,
        action=ACTION_LABELS.get(event.action, event.action),
        actor=actor,
        ip=event.ip,
        user_agent=event.user_agent,
        sha256=event.sha256,
        sha256_label=SHA_LABELS.get(event.action, "SHA-256"),
        document_sha256=seen_pdf if event.action == "signed" else None,
    )


def audit_entries(events: Sequence[LetterEvent]) -> list[pdf.AuditEntry]:
    entries, seen = [], None
    for event in sorted(events, key=lambda e: (e.at, e.id or 0)):
        entries.append(audit_entry(event, seen))
        seen = event.pdf_sha256 or seen
    return entries


async def build_document(
    ctx: LetterContext,
    letter: Letter,
    case_number: str,
    signatures: Sequence[LetterSignature],
    events: Sequence[LetterEvent],
    *,
    extra_images: dict[int, bytes] | None = None,
) -> pdf.LetterDocument:
    """``extra_images`` maps a signature position to PNG bytes not yet in the store."""
    by_position = {s.position: s for s in signatures}
    blocks: list[pdf.SignerBlock] = []
    for position, signer in enumerate(letter.signers):
        signature = by_position.get(position)
        png: bytes | None = None
        if signature is not None:
            png = (extra_images or {}).get(position) or await ctx.blobs.read(signature.image_key)
        blocks.append(
            pdf.SignerBlock(
                name=str(signer["name"]),
                role=role_label(str(signer["role"])),
                signed_at=signature.signed_at if signature else None,
                png=png,
            )
        )
    return pdf.LetterDocument(
        title=letter.title,
        body=letter.body,
        case_number=case_number,
        reference=reference(letter, case_number),
        agency_name=ctx.agency_name,
        verify_url=ctx.verify_url(letter.id),
        timezone=ctx.timezone,
        issued_at=letter.issued_at or letter.created_at or dt.datetime.now(dt.UTC),
        body_sha256=letter.body_sha256,
        signers=blocks,
        audit=audit_entries(events),
    )


async def render_seal_store(ctx: LetterContext, document: pdf.LetterDocument) -> StoredPdf:
    """Render, seal and durably store; returns the blob reference of the sealed PDF."""
    unsigned = await pdf.render(document)
    sealed = await sealing.seal(
        unsigned,
        ctx.seal,
        reason=f"{document.title} {document.reference}",
        location=ctx.agency_name,
    )
    ref = await ctx.blobs.put(sealed.data, suffix=".pdf", kind="letter")
    return StoredPdf(ref.key, ref.sha256, ref.size)
