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


def verify_chain(case_number: str, events: Sequence[Mapping[str, Any]]) -> list[ChainBreak]:
    """Each event must follow its predecessor (seq + 1, prev_hash) and hash to itself."""
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
        try:
            recomputed: str | None = _recompute(case_number, event)
        except (KeyError, TypeError, ValueError) as exc:
            breaks.append(ChainBreak(seq_int, f"event cannot be hashed: {exc}"))
            recomputed = None
        if recomputed is not None and recomputed != event.get("hash"):
            breaks.append(ChainBreak(seq_int, "event content changed"))
        prev_hash = str(event.get("hash"))
    return breaks
