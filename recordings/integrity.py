"""Offline integrity: the timeline hash chain as exported into a bundle.

``server.cases.timeline.event_hash`` owns how an event hash is computed; this module
turns an event into plain JSON for the bundle (:func:`export_event`) and walks such an
exported chain with that same function (:func:`verify_chain`), so a bundle is checked by
exactly the rule that wrote the timeline. Every break is reported in seq order; callers
show the first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.errors import RecordTamperedError
from recordings.models import Decision
from server.cases.models import GENESIS_HASH, CaseEvent
from server.cases.timeline import event_hash


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int | None
    reason: str


def export_event(event: CaseEvent) -> dict[str, Any]:
    """The event as the bundle stores it: everything its hash covers, plus the hash."""
    actor = (
        {"kind": event.actor_kind, "id": event.actor_id, "name": event.actor_name}
        if event.actor_kind is not None
        else None
    )
    return {
        "seq": event.seq,
        "kind": event.kind,
        "actor": actor,
        "data": event.data,
        "at": event.created_at.astimezone(dt.UTC).replace(microsecond=0).isoformat(),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _recompute(case_number: str, event: Mapping[str, Any]) -> str:
    at = dt.datetime.fromisoformat(str(event["at"]))
    if at.tzinfo is None:
        raise ValueError("event time has no zone")
    data = event["data"]
    if not isinstance(data, Mapping):
        raise TypeError("event data is not an object")
    actor = event.get("actor")
    return event_hash(
        case_number=case_number,
        seq=int(event["seq"]),
        kind=str(event["kind"]),
        actor=actor if isinstance(actor, Mapping) else None,
        data=data,
        created_at=at,
        prev_hash=str(event["prev_hash"]),
    )


def verify_chain(
    case_number: str, events: Sequence[Mapping[str, Any]], *, masked: bool = False
) -> list[ChainBreak]:
    """Each event must follow its predecessor (seq + 1, prev_hash) and hash to itself.

    ``masked``: a redacted copy (``recordings.redaction``), whose events marked
    ``"redacted"`` cannot hash to themselves; only their links are checked. Elsewhere the
    mark is itself a break.
    """
    breaks: list[ChainBreak] = []
    prev_hash = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        seq = event.get("seq")
        seq_int = seq if isinstance(seq, int) else None
        if seq_int != expected_seq:
            breaks.append(
                ChainBreak(expected_seq, f"event missing or out of order (found {seq!r})")
            )
        if event.get("prev_hash") != prev_hash:
            breaks.append(ChainBreak(seq_int, "previous-hash link broken"))
        if event.get("redacted"):
            if not masked:
                breaks.append(ChainBreak(seq_int, "marked redacted in a bundle that is not"))
            prev_hash = str(event.get("hash"))
            continue
        try:
            recomputed: str | None = _recompute(case_number, event)
        except (KeyError, TypeError, ValueError) as exc:
            breaks.append(ChainBreak(seq_int, f"event cannot be hashed: {exc}"))
            recomputed = None
        if recomputed is not None and recomputed != event.get("hash"):
            breaks.append(ChainBreak(seq_int, "event content changed"))
        prev_hash = str(event.get("hash"))
    return breaks


def _actor_name(event: Mapping[str, Any]) -> str | None:
    actor = event.get("actor")
    return str(actor.get("name")) if isinstance(actor, Mapping) else None


def _compare(
    what: str, seq: int | None, row: Mapping[str, Any], chain: Mapping[str, Any]
) -> list[ChainBreak]:
    return [
        ChainBreak(seq, f"{what}: {key} is {row[key]!r} in the table, {chain[key]!r} on the chain")
        for key in chain
        if row.get(key) != chain[key]
    ]


def record_breaks(
    events: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
    checklist: Sequence[Mapping[str, Any]],
) -> list[ChainBreak]:
    """The decision and checklist tables checked against the events that recorded them.

    The pages read those tables (via :func:`chain_records` they now show what the chain
    says), so an edited, added or removed row is a break at the event it contradicts.
    Rows are plain dicts: decisions ``{"id", "outcome", "requirements", "reason",
    "deadline" (ISO date or None), "by"}``, checklist rows ``{"item", "result", "note",
    "snapshot_ids", "by"}``; events as exported (:func:`export_event`).
    """
    breaks: list[ChainBreak] = []
    recorded: dict[Any, Mapping[str, Any]] = {}
    latest: dict[str, Mapping[str, Any]] = {}
    for event in events:
        data = event.get("data")
        if not isinstance(data, Mapping):
            continue
        if event.get("kind") == "decision.recorded":
            recorded[data.get("decision_id")] = event
        elif event.get("kind") == "checklist.result":
            latest[str(data.get("item"))] = event
    for row in decisions:
        what = f"decision {row.get('id')}"
        found = recorded.pop(row.get("id"), None)
        if found is None:
            breaks.append(ChainBreak(None, f"{what}: in the table but on no event"))
            continue
        data = found["data"]
        chain = {k: data.get(k) for k in ("outcome", "requirements", "reason", "deadline")}
        chain["by"] = _actor_name(found)
        breaks += _compare(what, found.get("seq"), row, chain)
    for left in recorded.values():
        what = f"decision {left['data'].get('decision_id')}"
        breaks.append(ChainBreak(left.get("seq"), f"{what}: on the chain but not in the table"))
    for row in checklist:
        what = f"checklist item {row.get('item')!r}"
        found = latest.pop(str(row.get("item")), None)
        if found is None:
            breaks.append(ChainBreak(None, f"{what}: in the table but on no event"))
            continue
        data = found["data"]
        chain = {k: data.get(k) for k in ("result", "note")}
        chain["snapshot_ids"] = sorted(data.get("snapshot_ids") or [])
        chain["by"] = _actor_name(found)
        breaks += _compare(
            what,
            found.get("seq"),
            {**row, "snapshot_ids": sorted(row.get("snapshot_ids") or [])},
            chain,
        )
    for item, left in latest.items():
        breaks.append(
            ChainBreak(
                left.get("seq"), f"checklist item {item!r}: on the chain but not in the table"
            )
        )
    breaks.sort(key=lambda b: (b.seq is None, b.seq or 0))
    return breaks


def chain_records(
    events: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The current decision and checklist as the chain records them (what pages show).

    The newest ``decision.recorded`` is the decision; each item's newest ``checklist.result``
    is its result, items in the order they were first recorded.
    """
    decision: dict[str, Any] | None = None
    items: dict[str, dict[str, Any]] = {}
    for event in events:
        data = event.get("data")
        if not isinstance(data, Mapping):
            continue
        if event.get("kind") == "decision.recorded":
            decision = {
                "outcome": data.get("outcome"),
                "requirements": data.get("requirements") or "",
                "reason": data.get("reason") or "",
                "deadline": data.get("deadline"),
                "by": _actor_name(event),
                "at": event.get("at"),
            }
        elif event.get("kind") == "checklist.result":
            items[str(data.get("item"))] = {
                "item": str(data.get("item")),
                "result": data.get("result"),
                "note": data.get("note") or "",
                "snapshot_ids": list(data.get("snapshot_ids") or []),
                "by": _actor_name(event),
                "at": event.get("at"),
            }
    return decision, list(items.values())


async def checked_decision(session: AsyncSession, case_id: int) -> Decision | None:
    """The case's newest decision row, after checking it against its ``decision.recorded``.

    What the procedure (``server.cases.workflow.current_decision``) and anything else that
    acts on a decision call instead of reading the table: a row edited in the database
    raises :class:`RecordTamperedError` naming the event, so it is never acted on.
    """
    row = await session.scalar(
        select(Decision).where(Decision.case_id == case_id).order_by(Decision.id.desc()).limit(1)
    )
    if row is None:
        return None
    events = await session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.kind == "decision.recorded")
    )
    mine = [export_event(e) for e in events if e.data.get("decision_id") == row.id]
    found = record_breaks(mine, [decision_row(row)], [])
    if found:
        raise RecordTamperedError(params={"seq": found[0].seq if found[0].seq else "—"})
    return row


def decision_row(row: Decision) -> dict[str, Any]:
    """A decision row as :func:`record_breaks` compares it."""
    return {
        "id": row.id,
        "outcome": row.outcome,
        "requirements": row.requirements,
        "reason": row.reason,
        "deadline": row.deadline.isoformat() if row.deadline else None,
        "by": row.decided_by_name,
    }
