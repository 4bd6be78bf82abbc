"""The timeline in sentences: "06:20 王勘验 admitted 沙河种业有限公司".

Each event kind has an English msgid with ``%(name)s`` placeholders that the case pages
translate; the values come from the event itself (its actor and data) and from the names
the call's participants joined under. The hash chain stays what it is; pages show the
hashes behind a toggle. An event kind without a sentence is shown by its kind, so a new
kind is never hidden.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from server.cases.procedure import LABELS

SENTENCES: dict[str, str] = {
    "case.opened": "%(actor)s opened the case",
    "case.submitted": "%(actor)s submitted the application",
    "case.accepted": "%(actor)s accepted the application",
    "case.rejected": "%(actor)s did not accept the application: %(reason)s",
    "case.scheduled": "%(actor)s scheduled the inspection",
    "case.inspecting": "The video inspection began (%(actor)s admitted the applicant)",
    "case.in_session": "The consultation began",
    "case.under_review": "%(actor)s submitted the decision for internal review",
    "case.decided": "%(actor)s made the decision take effect",
    "case.rectifying": "Rectification until %(deadline)s",
    "case.re_inspection": "%(actor)s started the re-inspection",
    "case.closed": "%(actor)s closed the case",
    "case.withdrawn": "%(actor)s withdrew the application",
    "case.cancelled": "%(actor)s cancelled the case: %(reason)s",
    "case.party_added": "%(actor)s added %(name)s to the case",
    "case.hold": "%(actor)s changed the legal hold",
    "appointment.booked": "%(actor)s booked a video appointment",
    "appointment.rescheduled": "%(actor)s moved the appointment",
    "appointment.cancelled": "%(actor)s cancelled the appointment",
    "appointment.assigned": "%(actor)s assigned the appointment",
    "appointment.checked_in": "%(actor)s checked in",
    "appointment.in_session": "The video session began",
    "appointment.completed": "The video session ended",
    "appointment.no_show": "The applicant did not come",
    "live.joined": "%(actor)s joined the video",
    "live.admitted": "%(actor)s admitted %(subject)s",
    "live.declined": "%(actor)s declined %(subject)s",
    "live.readmitted": "%(actor)s let %(subject)s in after all",
    "live.removed": "%(actor)s removed %(subject)s",
    "live.ended": "%(actor)s ended the video session",
    "live.watched": "Observed by %(actor)s, from %(start)s to %(end)s",
    "live.invited": "%(actor)s invited %(name)s",
    "live.chat": "%(actor)s: %(text)s",
    "live.request": "%(actor)s asked for: %(request)s",
    "live.response": "%(actor)s answered: %(request)s",
    "snapshot.taken": "%(actor)s took a snapshot",
    "snapshot.annotated": "%(actor)s annotated a snapshot",
    "location.shared": "%(actor)s shared the location",
    "site.set": "%(actor)s set the site",
    "checklist.result": "%(actor)s recorded %(item)s",
    "decision.recorded": "%(actor)s drafted the decision",
    "recording.finished": "A recording was filed",
    "recording.purged": "A recording was removed by the retention policy",
    "recording.segment": "A segment of the recording was sealed on the record",
    "recording.segments": "%(count)s segments of the recordings were sealed on the record",
    "recording.gap": "Part of the recording is missing (frames lost)",
    "recording.recovered": "A recording left by a server restart was filed",
    "export.redacted": "%(actor)s exported a redacted copy for sharing",
    "letter.issued": "%(actor)s issued a document",
    "letter.signed": "%(actor)s signed a document",
    "letter.superseded": "%(actor)s replaced a document with a new version",
    "rectification.uploaded": "%(actor)s uploaded rectification evidence: %(name)s",
    "deadline.suspended": "%(actor)s suspended the deadline clock: %(reason)s",
    "deadline.resumed": "%(actor)s resumed the deadline clock",
}
CARD_SENTENCES = {
    "warning": "Deadline warning: %(used)s of %(promised)s working days used",
    "yellow": "Yellow card: %(used)s of %(promised)s working days used",
    "red": "Red card: %(used)s of %(promised)s working days used",
}
"""``deadline.card`` events (电子监察, :mod:`server.supervision.card_evaluator`) by colour."""


FOLDED = frozenset({"recording.segment"})
"""Kinds that come in runs (a sealed segment every few seconds of a call): a page shows each
run as one line; the chain and the export keep every event."""


def fold(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``events`` with each run of :data:`FOLDED` kinds (the other participants' segments
    interleaved) shown as one ``recording.segments`` line: first time, count, last time and
    the last event's hash (which covers the run)."""
    out: list[Mapping[str, Any]] = []
    run: list[Mapping[str, Any]] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            out.append(
                {
                    **run[-1],
                    "kind": "recording.segments",
                    "at": run[0].get("at"),
                    "until": run[-1].get("at"),
                    "data": {"count": len(run)},
                }
            )
        run.clear()

    for event in events:
        if event.get("kind") in FOLDED:
            run.append(event)
            continue
        flush()
        out.append(event)
    flush()
    return out


def participant_names(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Participant id → the name they joined a call under (their own ``live.joined``)."""
    names: dict[str, str] = {}
    for event in events:
        data = event.get("data") or {}
        if event.get("kind") == "live.joined" and event.get("actor"):
            names[str(data.get("participant"))] = str(event["actor"])
    return names


def _clock(value: object, zone: dt.tzinfo | None) -> str:
    """``HH:MM:SS`` of an ISO time in an event's data, in ``zone`` (stored as UTC)."""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value or "")
    return (moment.astimezone(zone) if zone else moment).strftime("%H:%M:%S")


def sentence(
    event: Mapping[str, Any], names: Mapping[str, str], zone: dt.tzinfo | None = None
) -> tuple[str, dict[str, str]]:
    """(msgid, params) for one event of ``recordings.casefile.timeline_view``; the actor
    is empty for the system (the page says so in the reader's language)."""
    kind = str(event.get("kind", ""))
    data = event.get("data") or {}
    params = {
        "actor": str(event.get("actor") or ""),
        "subject": names.get(str(data.get("participant", "")), str(data.get("participant", ""))),
        "reason": str(data.get("reason") or ""),
        "deadline": str(data.get("deadline") or ""),
        "name": str(data.get("name") or ""),
        "text": str(data.get("text") or "")[:200],
        "item": str(data.get("item") or ""),
        "request": str(data.get("kind") or ""),
        "state": LABELS.get(kind.removeprefix("case."), ""),
        "count": str(data.get("count") or ""),
        "used": str(data.get("used", "")),
        "promised": str(data.get("promised", "")),
        "start": _clock(data.get("from"), zone),
        "end": _clock(data.get("to"), zone),
    }
    if kind == "deadline.card" and data.get("colour") in CARD_SENTENCES:
        return CARD_SENTENCES[str(data["colour"])], params
    return SENTENCES.get(kind, kind), params
