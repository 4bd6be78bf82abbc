"""Signing a letter: one named signer at a time, once, into a freshly sealed PDF.

Order of work, and why:

1. the image is checked before anything else (``signatures.accept``), so junk costs
   neither a transaction nor a blob;
2. a read transaction checks the guards — case open, letter signable, this person is the
   signer whose turn it is, consent given — and collects what the PDF needs;
3. the image and the re-rendered, re-sealed PDF are written to the blob store (fsynced);
4. a write transaction advances the letter with a conditional UPDATE on the
   ``next_signer`` value seen in 2 and inserts the signature row, whose unique
   constraints refuse a second signature by the same person or for the same turn. Two
   concurrent submissions (double tap, two tabs, two workers) therefore produce exactly
   one signature; the loser gets ``letter_already_signed`` and changes no row.

Only after 4 commits does the API answer, so an acknowledged signature is durable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.principal import Principal
from server.cases.access import can_read_case
from server.cases.models import Case
from server.cases.procedure import is_open
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.letters.documents import LetterContext, build_document, render_seal_store
from server.letters.errors import (
    AlreadySignedError,
    CaseClosedError,
    ConsentRequiredError,
    LetterCompleteError,
    LetterNotFoundError,
    LetterNotIssuedError,
    LetterSupersededError,
    NotASignerError,
    NotYourTurnError,
)
from server.letters.issuance import Audit
from server.letters.models import SIGNABLE, Letter, LetterEvent, LetterSignature
from server.letters.signatures import SignatureImage


def _is(signer: dict[str, Any], principal: Principal) -> bool:
    return signer["kind"] == principal.kind and int(signer["id"]) == principal.id


def check_can_sign(letter: Letter, case: Case, principal: Principal, signed: set[int]) -> None:
    """The guards, in the order a person would want to hear them."""
    params = {"letter": letter.id, "case": case.number}
    if not is_open(case):
        raise CaseClosedError(params=params)
    positions = [i for i, s in enumerate(letter.signers) if _is(s, principal)]
    if not positions:
        raise NotASignerError()
    if any(p in signed for p in positions):
        raise AlreadySignedError(params=params)
    if letter.status == "superseded" or letter.superseded_by_id is not None:
        raise LetterSupersededError(params=params)
    if letter.status == "signed":
        raise LetterCompleteError(params=params)
    if letter.status not in SIGNABLE:
        raise LetterNotIssuedError(params=params)
    if letter.next_signer not in positions:
        waiting = letter.signer_at(letter.next_signer) or {"name": "?"}
        raise NotYourTurnError(params={**params, "waiting_for": waiting["name"]})


async def readable_letter(
    session: AsyncSession, principal: Principal, letter_id: int
) -> tuple[Letter, Case]:
    """The letter and its case if ``principal`` may read them; 404 otherwise."""
    letter = await session.get(Letter, letter_id)
    case = await session.get(Case, letter.case_id) if letter is not None else None
    if letter is None or case is None or not await can_read_case(session, principal, case):
        raise LetterNotFoundError()
    return letter, case


async def sign(
    db: async_sessionmaker[AsyncSession],
    ctx: LetterContext,
    principal: Principal,
    letter_id: int,
    image: SignatureImage,
    *,
    consent: bool,
    audit: Audit,
) -> Letter:
    """Record ``principal``'s signature on the letter; returns the updated letter."""
    async with db() as session:
        letter, case = await readable_letter(session, principal, letter_id)
        signatures = list(
            (
                await session.execute(
                    select(LetterSignature).where(LetterSignature.letter_id == letter.id)
                )
            ).scalars()
        )
        check_can_sign(letter, case, principal, {s.position for s in signatures})
        if not consent:
            raise ConsentRequiredError()
        events = list(
            (
                await session.execute(select(LetterEvent).where(LetterEvent.letter_id == letter.id))
            ).scalars()
        )
    position = letter.next_signer
    signer = letter.signers[position]
    seen_pdf = letter.pdf_sha256 or ""
    image_ref = await ctx.blobs.put(image.png, suffix=".png", kind="signature")
    now = utcnow()
    signature = LetterSignature(
        letter_id=letter.id,
        position=position,
        signer_kind=principal.kind,
        signer_id=principal.id,
        role=str(signer["role"]),
        name=str(signer["name"]),
        image_key=image_ref.key,
        image_sha256=image_ref.sha256,
        consent=True,
        ip=audit.ip,
        user_agent=audit.agent,
        document_sha256=seen_pdf,
        signed_at=now,
    )
    event = LetterEvent(
        letter_id=letter.id,
        action="signed",
        actor_kind=principal.kind,
        actor_id=principal.id,
        actor_name=str(signer["name"]),
        actor_role=str(signer["role"]),
        ip=audit.ip,
        user_agent=signature.user_agent,
        sha256=image_ref.sha256,
        at=now,
    )
    last = position == len(letter.signers) - 1
    document = await build_document(
        ctx,
        letter,
        case.number,
        [*signatures, signature],
        [*events, event],
        extra_images={position: image.png},
    )
    stored = await render_seal_store(ctx, document)
    event.pdf_key, event.pdf_sha256 = stored.key, stored.sha256
    params = {"letter": letter.id, "case": case.number}
    async with db.begin() as session:
        fresh_case = await session.get(Case, case.id, populate_existing=True)
        if fresh_case is None or not is_open(fresh_case):
            raise CaseClosedError(params=params)
        result = await session.execute(
            update(Letter)
            .where(
                Letter.id == letter.id,
                Letter.next_signer == position,
                Letter.status.in_(SIGNABLE),
                Letter.superseded_by_id.is_(None),
            )
            .values(
                next_signer=position + 1,
                status="signed" if last else "partially_signed",
                pdf_key=stored.key,
                pdf_sha256=stored.sha256,
                sealed_at=utcnow(),
                signed_at=now if last else None,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise AlreadySignedError(params=params)
        session.add(signature)
        session.add(event)
        try:
            await session.flush()
        except IntegrityError:
            raise AlreadySignedError(params=params) from None
        await append_event(
            session,
            fresh_case,
            kind="letter.signed",
            actor=principal,
            data={
                "letter_id": letter.id,
                "kind": letter.kind,
                "version": letter.version,
                "position": position,
                "role": signature.role,
                "signature_sha256": image_ref.sha256,
                "document_seen_sha256": seen_pdf,
                "pdf_sha256": stored.sha256,
                "complete": last,
                "blobs": [
                    {"key": image_ref.key, "sha256": image_ref.sha256},
                    {"key": stored.key, "sha256": stored.sha256},
                ],
            },
        )
        updated = await session.get(Letter, letter.id, populate_existing=True)
        assert updated is not None
    return updated
