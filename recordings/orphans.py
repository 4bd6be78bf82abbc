"""The periodic check that no evidence file on disk is outside every case.

Start-up recovery (``recordings.recovery``) files what a killed process left, and verify
reports a case whose own rooms still have files; neither notices a file that turns up
later or whose room belongs to no case: a recording left by a room no case owns, a blob
moved into the store by a filing whose transaction then failed, a snapshot whose row was
deleted by hand. :func:`find_unfiled` lists them:

* under ``data_dir/recordings``: every recorder file no recorder is writing (no ``flock``
  held, see ``recordings.recorder.hold``) and not touched for ``settle_s`` seconds (a
  file that just closed is filed within moments of its room closing);
* in the blob store, the kinds the evidence tables reference, ``recording``,
  ``snapshot`` and ``annotated``: every blob older than ``settle_s`` that no row names
  (``Recording.blob_key``, ``Snapshot.original_key / watermarked_key / annotated_key``).

It only reports: deleting or filing evidence without a case to put it on is a person's
decision. ``server.evidence`` runs it hourly (``YUNKAN_UNFILED_CHECK_S``), logs each file
as a warning, sets the ``yunkan_unfiled_files`` gauge and shows the count on ``/readyz``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.blobs import BlobStore
from recordings.models import Recording, Snapshot
from recordings.recovery import in_use, leftovers

BLOB_KINDS = ("recording", "snapshot", "annotated")
"""The blob kinds whose every file an evidence row must name."""
SETTLE_S = 300.0
"""Files younger than this are left to the filing that is presumably under way."""


@dataclass(frozen=True)
class UnfiledReport:
    """What one run found: paths relative to the data directory, sorted."""

    checked_at: dt.datetime
    recordings: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.recordings) + len(self.blobs)

    def as_dict(self) -> dict[str, object]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "files": self.count,
            "recordings": self.recordings,
            "blobs": self.blobs,
        }


async def referenced_keys(session: AsyncSession) -> set[str]:
    """Every blob key an evidence row names."""
    keys: set[str] = set()
    for key in await session.scalars(select(Recording.blob_key)):
        if key:
            keys.add(key)
    rows = await session.execute(
        select(Snapshot.original_key, Snapshot.watermarked_key, Snapshot.annotated_key)
    )
    for row in rows:
        keys.update(k for k in row if k)
    return keys


def _settled(path: Path, now: float, settle_s: float) -> bool:
    try:
        return now - path.stat().st_mtime >= settle_s
    except FileNotFoundError:  # filed or purged meanwhile
        return False


def _stray_recordings(root: Path, now: float, settle_s: float) -> list[Path]:
    return [
        left.path
        for left in leftovers(root)
        if _settled(left.path, now, settle_s) and not in_use(left.path)
    ]


def _blob_files(store: BlobStore, now: float, settle_s: float) -> list[tuple[str, Path]]:
    found = []
    for kind in BLOB_KINDS:
        for path in sorted((store.root / kind).glob("*/*/*")):
            if path.name.startswith(".") or not path.is_file():
                continue  # a put's temporary file
            if _settled(path, now, settle_s):
                found.append((path.relative_to(store.root).as_posix(), path))
    return found


async def find_unfiled(
    db: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    recordings_root: Path,
    *,
    base: Path,
    settle_s: float = SETTLE_S,
) -> UnfiledReport:
    """The evidence files on disk that no case holds (paths relative to ``base``)."""
    now = time.time()
    stray = await asyncio.to_thread(_stray_recordings, recordings_root, now, settle_s)
    # Files first, rows second: a blob filed between the two is named by then.
    candidates = await asyncio.to_thread(_blob_files, blobs, now, settle_s)
    async with db() as session:
        keys = await referenced_keys(session)

    def shown(path: Path) -> str:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            return str(path)

    return UnfiledReport(
        checked_at=dt.datetime.now(dt.UTC),
        recordings=[shown(p) for p in stray],
        blobs=[shown(p) for key, p in candidates if key not in keys],
    )
