"""Recordings that no case holds: what a killed process left under ``data_dir/recordings``.

Live writes each room's files to ``recordings/<room id>/<opened at>/<participant>.webm``
and files them on the case when the room closes. A process killed before that (SIGKILL,
OOM, power loss) leaves them on disk, playable up to about a second before the end (see
``recordings.recorder``), and the case shows nothing. At start-up :func:`recover_recordings`
files every such file on its room's case as an ``incomplete`` recording with a
``recording.recovered`` event (hash, size, what the file still holds); :func:`unfiled_files`
lets verification report a case whose rooms still have files on disk.

Which files are left over is decided by the recorder's ``flock``: a live recorder holds
one on its file for as long as it writes, the kernel releases it when the process dies.
So several workers sharing the data directory may all run this at start-up: each file is
filed by the one that holds its lock and still finds it in place, and no file another
worker is writing is touched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.blobs import BlobStore
from recordings.evidence import register_recording
from recordings.integrity import export_event
from recordings.probe import media_seconds
from recordings.recorder import hold
from recordings.segments import KIND, Mark, TakeState, segment_data, take_of
from server.booking.models import Appointment
from server.cases.models import Case
from server.cases.rooms import case_of_room, parse_room
from server.cases.timeline import Break, append_event, load_events

log = logging.getLogger(__name__)

RECORDINGS = "recordings"
"""The directory under ``data_dir`` where live rooms record."""
STAMP = "%Y%m%dT%H%M%S.%fZ"
"""How live names a room's recording directory (the time the room opened, UTC)."""


@dataclass(frozen=True)
class Leftover:
    room_id: str
    participant: str
    path: Path
    opened_at: dt.datetime | None


def leftovers(root: Path) -> list[Leftover]:
    """Every recording file under ``root`` (``<room>/<stamp>/<participant>.webm``)."""
    found = []
    for path in sorted(root.glob("*/*/*.webm")):
        stamp = path.parent.name
        try:
            opened = dt.datetime.strptime(stamp, STAMP).replace(tzinfo=dt.UTC)
        except ValueError:
            opened = None
        found.append(Leftover(path.parent.parent.name, path.stem, path, opened))
    return found


@contextmanager
def _claimed(path: Path) -> Iterator[bool]:
    """True while we hold the file's lock and it is still the file at ``path``."""
    try:
        handle = hold(path)
    except (BlockingIOError, FileNotFoundError):
        yield False
        return
    try:
        # Another worker may have filed (moved) it between our listing and our lock.
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        yield same and os.fstat(handle.fileno()).st_size > 0
    finally:
        handle.close()


def _complete(path: Path) -> bool:
    """Whether the recorder closed the file (it writes the duration only then)."""
    try:
        with av.open(str(path)) as container:
            return container.duration is not None
    except av.error.FFmpegError:
        return False


def in_use(path: Path) -> bool:
    try:
        hold(path).close()
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False
    return False


async def recover_recordings(
    db: async_sessionmaker[AsyncSession], blobs: BlobStore, root: Path
) -> list[int]:
    """File what a killed process left under ``root`` on its rooms' cases; the new ids.

    A file whose room belongs to no case stays where it is (logged): there is nowhere to
    file it, and deleting evidence is not this function's call.
    """
    ids: list[int] = []
    for leftover in await asyncio.to_thread(leftovers, root):
        async with db() as session:
            case_id = await case_of_room(session, leftover.room_id)
        if case_id is None:
            log.warning("recording %s belongs to no case; left on disk", leftover.path)
            continue
        with _claimed(leftover.path) as ours:
            if not ours:
                continue
            recovered = await asyncio.to_thread(media_seconds, leftover.path)
            complete = await asyncio.to_thread(_complete, leftover.path)
            ended = dt.datetime.fromtimestamp(leftover.path.stat().st_mtime, dt.UTC)
            started = leftover.opened_at or ended - dt.timedelta(seconds=recovered)
            async with db.begin() as session:
                # The take's last segment: from where the chain's segments stop to the end
                # of what the file still holds, the interruption's reason on it.
                await close_take(session, case_id, leftover, "server_restart")
                row = await register_recording(
                    session,
                    blobs,
                    case_id=case_id,
                    session_ref=leftover.room_id,
                    participant=leftover.participant,
                    participant_role=leftover.participant.partition("-")[0],
                    path=leftover.path,
                    started_at=started,
                    ended_at=ended,
                    duration_s=recovered,
                    quality={"complete": complete, "cause": "server_restart"},
                    # Complete: closed by its recorder, but the filing never happened.
                    status="finished" if complete else "incomplete",
                    kind="recording.recovered",
                )
            ids.append(row.id)
            log.warning(
                "filed recording %s left by a stopped process on case %s (%.1f s recovered)",
                leftover.path,
                case_id,
                recovered,
            )
    _prune(root)
    return ids


async def close_take(
    session: AsyncSession, case_id: int, leftover: Leftover, reason: str
) -> dict[str, Any] | None:
    """Append the final ``recording.segment`` of a take its recorder never finished."""
    take = take_of(leftover.path)
    events = [export_event(e) for e in await load_events(session, case_id)]
    state = TakeState.after(events, take)
    if any(
        e["kind"] == KIND and e["data"].get("take") == take and e["data"].get("final")
        for e in events
    ):
        return None  # the recorder closed it; only the filing failed
    size = leftover.path.stat().st_size
    mark = Mark(size, leftover.path.stat().st_mtime, reason, final=True)
    data = await asyncio.to_thread(segment_data, leftover.path, state, mark)
    if data is None:
        return None
    await append_event(
        session,
        case_id,
        kind=KIND,
        actor=None,
        data={"room": leftover.room_id, "participant": leftover.participant, **data},
    )
    return data


def _prune(root: Path) -> None:
    """Remove the room and stamp directories that filing emptied."""
    for directory in sorted(root.glob("*/*"), reverse=True) + sorted(root.glob("*")):
        if directory.is_dir():
            with suppress(OSError):  # not empty
                directory.rmdir()


async def rooms_of_case(session: AsyncSession, case_id: int) -> list[str]:
    """The live rooms whose recordings belong to ``case_id`` (its own and its bookings')."""
    appointments = await session.scalars(
        select(Appointment.id).where(Appointment.case_id == case_id)
    )
    return [f"case-{case_id}", *(f"appt-{a}" for a in appointments)]


async def unfiled_breaks(session: AsyncSession, case: Case, root: Path) -> list[Break]:
    """A verification break for each file of the case's rooms that is on disk, not filed."""
    rooms = await rooms_of_case(session, case.id)
    paths = await asyncio.to_thread(unfiled_files, root, rooms)
    return [
        Break(
            seq=case.head_seq,
            event_id=None,
            reason=f"recording {path.relative_to(root)} is on disk but not filed on the case",
        )
        for path in paths
    ]


def unfiled_files(root: Path, rooms: list[str]) -> list[Path]:
    """Recording files of ``rooms`` on disk that no recorder is writing: not on the case."""
    wanted = {room for room in rooms if parse_room(room) is not None}
    return [
        leftover.path
        for leftover in leftovers(root)
        if leftover.room_id in wanted and not in_use(leftover.path)
    ]
