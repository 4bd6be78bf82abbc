"""Every fact on the chain: the side tables the pages read, checked against their events.

The decision and the checklist are compared by ``recordings.integrity.record_breaks``;
this module does the same for the rest of what a page shows as fact: locations (with
their distance and flag), the site, snapshots (image hashes, checklist item, position),
recordings (which blob, which hash, finished / incomplete / purged), document versions
(kind, version, body and PDF hashes, what superseded what) and the case's outcome (set by
the procedure's state events). :func:`load_facts` reads the rows as plain dicts (the
bundle carries them in ``manifest.json`` under ``tables``), :func:`fact_breaks` reports a
row that says something its event does not, at that event's ``seq``. A row with no event
at all is a break without one (``seq`` None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.integrity import ChainBreak
from recordings.models import CaseSite, Location, Recording, Snapshot
from server.cases.models import Case
from server.letters.models import Letter

Rows = Mapping[str, Sequence[Mapping[str, Any]]]
FACT_TABLES = ("locations", "site", "snapshots", "recordings", "letters", "outcome")


async def load_facts(session: AsyncSession, case: Case) -> dict[str, list[dict[str, Any]]]:
    """The case's side rows as :func:`fact_breaks` compares them."""

    def rows(model: Any) -> Any:
        return select(model).where(model.case_id == case.id).order_by(model.id)

    locations = (await session.scalars(rows(Location))).all()
    sites = (await session.scalars(rows(CaseSite))).all()
    shots = (await session.scalars(rows(Snapshot))).all()
    recs = (await session.scalars(rows(Recording))).all()
    letters = (await session.scalars(rows(Letter))).all()
    return {
        "locations": [
            {
                "id": r.id,
                "lat": r.lat,
                "lon": r.lon,
                "accuracy_m": r.accuracy_m,
                "distance_m": round(r.distance_m, 1) if r.distance_m is not None else None,
                "flagged": r.flagged,
            }
            for r in locations
        ],
        "site": [
            {"address": s.address, "lat": s.lat, "lon": s.lon, "threshold_m": s.threshold_m}
            for s in sites
        ],
        "snapshots": [
            {
                "id": s.id,
                "checklist_item": s.checklist_item,
                "original_sha256": s.original_sha256,
                "watermarked_sha256": s.watermarked_sha256,
                "annotated_sha256": s.annotated_sha256,
                "location": _position(s.lat, s.lon, s.accuracy_m),
            }
            for s in shots
        ],
        "recordings": [
            {"id": r.id, "blob_key": r.blob_key, "sha256": r.sha256, "status": r.status}
            for r in recs
        ],
        "letters": [
            {
                "id": x.id,
                "kind": x.kind,
                "version": x.version,
                "body_sha256": x.body_sha256,
                "pdf_sha256": x.pdf_sha256,
                "superseded_by": x.superseded_by_id,
            }
            for x in letters
            if x.pdf_sha256 is not None  # a draft never issued is no fact yet
        ],
        "outcome": [{"outcome": case.outcome}],
    }


def _position(lat: float | None, lon: float | None, accuracy: float | None) -> Any:
    return None if lat is None or lon is None else {"lat": lat, "lon": lon, "accuracy_m": accuracy}


class _Chain:
    """What the events say each row should be: ``{table: {row id: (seq, fields)}}``."""

    def __init__(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.rows: dict[str, dict[Any, tuple[Any, dict[str, Any]]]] = {t: {} for t in FACT_TABLES}
        self.outcome: tuple[Any, Any] | None = None
        for event in events:
            data = event.get("data")
            if isinstance(data, Mapping):
                self._read(str(event.get("kind")), event.get("seq"), data)

    def _set(self, table: str, key: Any, seq: Any, **fields: Any) -> None:
        old = self.rows[table].get(key, (seq, {}))[1]
        self.rows[table][key] = (seq, {**old, **fields})

    def _read(self, kind: str, seq: Any, data: Mapping[str, Any]) -> None:
        blobs = [b.get("sha256") for b in data.get("blobs") or [] if isinstance(b, Mapping)]
        if kind == "location.shared":
            self._set(
                "locations",
                data.get("location_id"),
                seq,
                **{k: data.get(k) for k in ("lat", "lon", "accuracy_m", "distance_m", "flagged")},
            )
        elif kind == "site.set":
            self._set(
                "site",
                None,
                seq,
                **{k: data.get(k) for k in ("address", "lat", "lon")},
                threshold_m=data.get("threshold_m"),
            )
        elif kind == "snapshot.taken" and len(blobs) >= 2:
            fields = {
                "checklist_item": data.get("checklist_item"),
                "original_sha256": blobs[0],
                "watermarked_sha256": blobs[1],
                "annotated_sha256": None,
            }
            if "location" in data:  # events written before positions were on the chain
                fields["location"] = data["location"]
            self._set("snapshots", data.get("snapshot_id"), seq, **fields)
        elif kind == "snapshot.annotated" and blobs:
            self._set("snapshots", data.get("snapshot_id"), seq, annotated_sha256=blobs[0])
        elif kind in ("recording.finished", "recording.recovered") and data.get("blobs"):
            complete = kind == "recording.finished" or data.get("complete") is True
            self._set(
                "recordings",
                data.get("recording_id"),
                seq,
                blob_key=data["blobs"][0].get("key"),
                sha256=blobs[0],
                status="finished" if complete else "incomplete",
            )
        elif kind == "recording.purged":
            self._set("recordings", data.get("recording_id"), seq, status="purged")
        elif kind.startswith("letter.") and "letter_id" in data:
            self._letter(kind, seq, data)
        elif kind in ("case.under_review", "case.decided", "case.closed") and "outcome" in data:
            self.outcome = (seq, data.get("outcome"))
        elif kind == "case.inspecting" and data.get("review") == "returned":
            self.outcome = (seq, None)

    def _letter(self, kind: str, seq: Any, data: Mapping[str, Any]) -> None:
        letter = data.get("letter_id")
        if kind == "letter.issued":
            self._set(
                "letters",
                letter,
                seq,
                kind=data.get("kind"),
                version=data.get("version"),
                body_sha256=data.get("body_sha256"),
                superseded_by=None,
            )
            if data.get("supersedes") is not None:
                self._set("letters", data["supersedes"], seq, superseded_by=letter)
        if "pdf_sha256" in data:
            self._set("letters", letter, seq, pdf_sha256=data.get("pdf_sha256"))


def _name(table: str, key: Any) -> str:
    return "site" if table == "site" else f"{table.removesuffix('s')} {key}"


def fact_breaks(events: Sequence[Mapping[str, Any]], facts: Rows) -> list[ChainBreak]:
    """Each side row against the events that recorded it (tables absent are not checked)."""
    chain = _Chain(events)
    breaks: list[ChainBreak] = []
    for table in ("locations", "site", "snapshots", "recordings", "letters"):
        if table not in facts:
            continue
        expected = dict(chain.rows[table])
        for row in facts[table]:
            key = row.get("id") if table != "site" else None
            what = _name(table, key)
            found = expected.pop(key, None)
            if found is None:
                breaks.append(ChainBreak(None, f"{what}: in the table but on no event"))
                continue
            seq, fields = found
            breaks += [
                ChainBreak(seq, f"{what}: {k} is {row.get(k)!r} in the table, {v!r} on the chain")
                for k, v in fields.items()
                if row.get(k) != v
            ]
        for key, (seq, _) in expected.items():
            what = _name(table, key)
            breaks.append(ChainBreak(seq, f"{what}: on the chain but not in the table"))
    if facts.get("outcome") and chain.outcome is not None:
        seq, outcome = chain.outcome
        stored = facts["outcome"][0].get("outcome")
        if stored != outcome:
            breaks.append(
                ChainBreak(
                    seq, f"case outcome is {stored!r} in the table, {outcome!r} on the chain"
                )
            )
    return breaks
