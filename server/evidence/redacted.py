"""The redacted export: a case bundle for sharing outside the agency (PIPL / GB/T 35273).

``GET /api/v1/cases/{id}/export/redacted`` needs the ``export`` action on the case. It
first puts an ``export.redacted`` event on the chain (who, when, the head it was made
from, what is masked) and commits, then writes the bundle (``recordings.export`` with a
``Redaction``), so the copy carries the record of its own making. Documents are rendered
again here from their stored text with names, ID numbers, mobiles and the audit page's IP
addresses masked and no signature images; they are not sealed (a seal vouches for the
original text), and say so in their title.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shutil
import tempfile
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from recordings.export import LetterCopies, Redaction, export_case
from recordings.redaction import (
    MASKED,
    STANDARD,
    UNCHANGED,
    Redactor,
    mask_ip,
    mask_name,
    redactor_for,
)
from server.appkeys import API_SPEC, BLOBS, DB, SETTINGS
from server.cases.access import authorize
from server.cases.timeline import append_event
from server.evidence.handlers import send_zip
from server.http.requests import int_param, require_staff
from server.letters import pdf
from server.letters.appkeys import LETTERS
from server.letters.documents import build_document
from server.letters.models import Letter, LetterEvent, LetterSignature
from server.openapi import ApiRoutes

routes = ApiRoutes(tag="evidence")
COPY_NOTE = "（对外共享脱敏副本，未加盖电子印章）"


def letter_copies(app: web.Application, case_id: int, case_number: str) -> LetterCopies:
    """Each issued document of the case, rendered again with the personal data masked."""

    async def render(redactor: Redactor) -> list[tuple[str, bytes]]:
        ctx = app.get(LETTERS)
        if ctx is None:
            return []
        async with app[DB]() as session:
            letters = (
                await session.scalars(
                    select(Letter)
                    .where(Letter.case_id == case_id, Letter.pdf_sha256.is_not(None))
                    .order_by(Letter.id)
                )
            ).all()
            loaded = []
            for letter in letters:
                signatures = (
                    await session.scalars(
                        select(LetterSignature).where(LetterSignature.letter_id == letter.id)
                    )
                ).all()
                events = (
                    await session.scalars(
                        select(LetterEvent).where(LetterEvent.letter_id == letter.id)
                    )
                ).all()
                loaded.append((letter, signatures, events))
        out = []
        for letter, signatures, events in loaded:
            names = [str(s.get("name") or "") for s in letter.signers]
            masker = redactor_for([], [*redactor.names, *names])
            # Signature images are not read: a redacted copy carries none.
            document = await build_document(ctx, letter, case_number, [], events)
            signed = {s.position: s.signed_at for s in signatures}
            document = dataclasses.replace(
                document,
                title=document.title + COPY_NOTE,
                body=masker.text(document.body),
                signers=[
                    dataclasses.replace(
                        block, name=mask_name(block.name), signed_at=signed.get(n), png=None
                    )
                    for n, block in enumerate(document.signers)
                ],
                audit=[
                    dataclasses.replace(
                        entry,
                        actor=masker.text(entry.actor),
                        ip=mask_ip(entry.ip) if entry.ip else None,
                    )
                    for entry in document.audit
                ],
            )
            body = await pdf.render(document)
            out.append((f"{letter.kind}-v{letter.version}-{letter.id}.pdf", body))
        return out

    return render


@routes.get(
    "/api/v1/cases/{id}/export/redacted",
    summary="Export a redacted copy of the case for sharing outside the agency (staff)",
    responses={200: "application/zip", 403: "error", 404: "error", 422: "error"},
    auth="staff",
)
async def export_redacted(request: web.Request) -> web.StreamResponse:
    principal = require_staff(request)
    settings = request.app[SETTINGS]
    async with request.app[DB].begin() as session:
        case = await authorize(session, principal, int_param(request, "id"), "export")
        event = await append_event(
            session,
            case,
            kind="export.redacted",
            actor=principal,
            data={
                "standard": STANDARD,
                "masked": list(MASKED),
                "unchanged": list(UNCHANGED),
                "from_head": case.head_hash,
            },
        )
        case_id, number, seq = case.id, case.number, event.seq
    tmpdir = Path(
        await asyncio.to_thread(tempfile.mkdtemp, prefix="export-", dir=settings.data_dir)
    )
    target = tmpdir / "bundle.zip"
    try:
        await export_case(
            request.app[DB],
            request.app[BLOBS],
            case_id,
            target=target,
            timezone=settings.timezone,
            now=dt.datetime.now(dt.UTC),
            redaction=Redaction(seq, letters=letter_copies(request.app, case_id, number)),
        )
        return await send_zip(request, target, f"{number}-redacted.zip")
    finally:
        await asyncio.to_thread(shutil.rmtree, tmpdir, True)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[API_SPEC].include(routes)
