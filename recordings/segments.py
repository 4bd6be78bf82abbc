"""The continuous-take proof (一镜到底): a recording's bytes on the case chain, piece by piece.

While a recorder writes, every :data:`SEGMENT_S` seconds it *marks* how far its file has
grown (:class:`Mark`, a stat, nothing more, on the packet path). :class:`SegmentLog` turns
each mark into a ``recording.segment`` event off that path: it hashes the bytes written
since the previous mark in a thread, reads what they hold (media time, video frames) from
the Matroska clusters, and appends the event. One worker per room, in mark order, so a
take's segments are contiguous; a segment that fails to hash or to append is not lost,
the next one covers its bytes too. When the take ends, the last mark is ``final`` and
says why (``ended``; ``server_restart`` when ``recordings.recovery`` files what a killed
process left); a pause of :data:`PAUSE_S` or more in the arriving stream closes a segment
with ``network`` and the pause's length.

Why the file can be proven piece by piece: the WebM muxer writes whole clusters and never
goes back to them; only the header before the first cluster (segment size, duration, seek
head) is rewritten when the file is closed, so the segments cover ``[header end, size)``
and the final one also hashes the header as it was left. :func:`segment_breaks` checks a
filed file against its segments (server verify and the offline bundle verifier) and names
the first segment that does not match, with its byte range and time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.integrity import ChainBreak
from server.cases.timeline import append_event

log = logging.getLogger(__name__)

SEGMENT_S = 10.0
"""Seconds of wall clock between two segment marks of a take."""
PAUSE_S = 2.0
"""A stream that pauses this long (no packet at all) closes a segment as ``network``."""
KIND = "recording.segment"
CLUSTER = b"\x1f\x43\xb6\x75"
HEADER_SCAN = 1 << 16


@dataclass(frozen=True, slots=True)
class Mark:
    """The recorder's file had ``end`` bytes at ``wall`` (epoch s); see the module docstring."""

    end: int
    wall: float
    reason: str
    """``interval``, ``network`` (the stream paused ``pause_s``), ``ended``, ``server_restart``."""
    final: bool = False
    pause_s: float | None = None


@dataclass(frozen=True, slots=True)
class Piece:
    start: int
    end: int
    sha256: str
    first_ms: int | None
    last_ms: int | None
    frames: int
    """Video blocks (track 1) in the piece."""


def take_of(path: Path) -> str:
    """A take's name on the chain: ``<room>/<opened at>/<participant>.webm``."""
    return "/".join(Path(path).parts[-3:])


def header_end(handle: BinaryIO) -> int | None:
    """Offset of the first cluster (where the bytes that are never rewritten begin)."""
    handle.seek(0)
    at = handle.read(HEADER_SCAN).find(CLUSTER)
    return at if at >= 0 else None


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int]:
    first = data[at]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or at + length > len(data):
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return value, at + length


def _clusters(data: bytes) -> tuple[int | None, int | None, int]:
    """(first, last block time in ms, video blocks) of the whole clusters in ``data``."""
    first: int | None = None
    last: int | None = None
    frames = 0
    at = 0
    try:
        while at < len(data):
            ident, at = _vint(data, at, keep_marker=True)
            size, at = _vint(data, at, keep_marker=False)
            end = at + size
            if ident != 0x1F43B675:
                at = end
                continue
            base = 0
            while at < end:
                child, at = _vint(data, at, keep_marker=True)
                length, at = _vint(data, at, keep_marker=False)
                body = data[at : at + length]
                if child == 0xE7:  # Timecode
                    base = int.from_bytes(body, "big")
                elif child in (0xA3, 0xA0):  # SimpleBlock, BlockGroup (Block inside)
                    block = body if child == 0xA3 else body[body.find(b"\xa1") :]
                    if child == 0xA0:
                        _, skip = _vint(block, 1, keep_marker=False)
                        block = block[skip:]
                    track, pos = _vint(block, 0, keep_marker=False)
                    ms = base + int.from_bytes(block[pos : pos + 2], "big", signed=True)
                    first = ms if first is None else min(first, ms)
                    last = ms if last is None else max(last, ms)
                    frames += track == 1
                at += length
    except (ValueError, IndexError):
        log.warning("segment bytes do not parse as whole Matroska clusters")
    return first, last, frames


def read_piece(handle: BinaryIO, start: int, end: int) -> Piece:
    handle.seek(start)
    data = handle.read(max(0, end - start))
    first, last, frames = _clusters(data)
    return Piece(start, start + len(data), hashlib.sha256(data).hexdigest(), first, last, frames)


def _iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class TakeState:
    """Where a take's next segment starts (bytes, index, frames so far)."""

    start: int | None = None
    index: int = 0
    frames: int = 0

    @classmethod
    def after(cls, events: Sequence[Mapping[str, Any]], take: str) -> TakeState:
        """The state after the last segment of ``take`` among ``events`` (exported form)."""
        state = cls()
        for event in events:
            data = event.get("data") or {}
            if event.get("kind") == KIND and data.get("take") == take:
                state.start = int(data["bytes"][1])
                state.index = int(data["index"]) + 1
                state.frames = int(data["frames"][1])
        return state


def segment_data(path: Path, state: TakeState, mark: Mark) -> dict[str, Any] | None:
    """Hash what ``mark`` adds to the take at ``path``; the event data (None: nothing new).

    Advances ``state``. Blocking (reads the file): run it in a thread.
    """
    with path.open("rb") as handle:
        header = header_end(handle)
        if header is None:
            return None  # not one cluster written yet
        start = header if state.start is None else state.start
        end = max(start, min(mark.end, path.stat().st_size) if not mark.final else mark.end)
        if end == start and not mark.final:
            return None
        piece = read_piece(handle, start, end)
        data: dict[str, Any] = {
            "take": take_of(path),
            "index": state.index,
            "bytes": [piece.start, piece.end],
            "sha256": piece.sha256,
            "media_s": [
                None if piece.first_ms is None else piece.first_ms / 1000,
                None if piece.last_ms is None else piece.last_ms / 1000,
            ],
            "frames": [state.frames + 1, state.frames + piece.frames],
            "at": _iso(mark.wall),
            "reason": mark.reason,
            "final": mark.final,
        }
        if mark.pause_s is not None:
            data["pause_s"] = round(mark.pause_s, 3)
        if mark.final:
            handle.seek(0)
            data["header"] = {
                "bytes": [0, header],
                "sha256": hashlib.sha256(handle.read(header)).hexdigest(),
            }
    state.start, state.index, state.frames = piece.end, state.index + 1, data["frames"][1]
    return data


Append = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Appends a ``recording.segment`` event with this data for this participant."""


class SegmentLog:
    """One room's segment events, written in mark order by one worker task.

    :meth:`mark` is what the recorders call (cheap, synchronous); :meth:`drain` waits until
    every mark so far is on the chain (call it after closing the recorders and before the
    files are moved into the blob store).
    """

    def __init__(
        self,
        append: Append,
        *,
        hash_segment: Callable[[Path, TakeState, Mark], dict[str, Any] | None] | None = None,
    ) -> None:
        self._append = append
        self._hash = hash_segment or segment_data
        self._loop = asyncio.get_running_loop()  # made where the recorders' packets arrive
        self._queue: asyncio.Queue[tuple[str, Path, Mark] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._states: dict[Path, TakeState] = {}
        self.written = 0

    def mark(self, participant: str, path: Path, mark: Mark) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._loop:
            self._enqueue((participant, path, mark))
        else:  # a recorder closed in a worker thread
            self._loop.call_soon_threadsafe(self._enqueue, (participant, path, mark))

    def _enqueue(self, item: tuple[str, Path, Mark]) -> None:
        self._queue.put_nowait(item)
        if self._task is None:
            self._task = self._loop.create_task(self._run())

    async def drain(self) -> None:
        await asyncio.sleep(0)  # marks handed over from a thread are queued by now
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await asyncio.shield(self._task)
        self._task = None

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            participant, path, mark = item
            state = self._states.setdefault(path, TakeState())
            before = TakeState(state.start, state.index, state.frames)
            try:
                data = await asyncio.to_thread(self._hash, path, state, mark)
                if data is not None:
                    await self._append(participant, data)
                    self.written += 1
            except Exception:  # the next segment covers these bytes too
                log.exception("segment of %s (%s) not on the chain", path, mark.reason)
                state.start, state.index, state.frames = before.start, before.index, before.frames


async def append_segment(
    db: async_sessionmaker[AsyncSession],
    case_id: int,
    room_id: str,
    participant: str,
    data: dict[str, Any],
) -> None:
    """The segment event, in a transaction of its own (a live room's :class:`SegmentLog`)."""
    async with db() as session, session.begin():
        await append_event(
            session,
            case_id,
            kind=KIND,
            actor=None,
            data={"room": room_id, "participant": participant, **data},
        )


def take_summaries(events: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per take: how many segments, how it ended and every interruption (case view, report)."""
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        data = event.get("data") or {}
        if event.get("kind") != KIND:
            continue
        take = out.setdefault(
            str(data.get("take")), {"segments": 0, "ended": None, "interruptions": []}
        )
        take["segments"] += 1
        if data.get("reason") == "network":
            take["interruptions"].append(
                {"at": data.get("at"), "reason": "network", "pause_s": data.get("pause_s")}
            )
        if data.get("final"):
            take["ended"] = data.get("reason")
            if data.get("reason") != "ended":
                take["interruptions"].append({"at": data.get("at"), "reason": data["reason"]})
    return out


Opener = Callable[[str, str], BinaryIO | None]
"""Opens a filed recording by (blob key, sha256); None when it is not there."""


def _describe(take: str, data: Mapping[str, Any]) -> str:
    lo, hi = data.get("bytes", [None, None])
    t0, t1 = data.get("media_s", [None, None])
    when = f"{t0}–{t1} s" if t0 is not None else "no media"
    return (
        f"recording {take}: segment {data.get('index')} (bytes {lo}–{hi}, {when}, "
        f"written {data.get('at')})"
    )


def segment_breaks(events: Sequence[Mapping[str, Any]], open_file: Opener) -> list[ChainBreak]:
    """Each filed recording against its segments: the first bad segment of each take."""
    segments: dict[str, list[Mapping[str, Any]]] = {}
    filed: dict[str, Mapping[str, Any]] = {}
    for event in events:
        data = event.get("data") or {}
        if event.get("kind") == KIND:
            segments.setdefault(str(data.get("take")), []).append(event)
        elif event.get("kind") in ("recording.finished", "recording.recovered") and data.get(
            "take"
        ):
            filed[str(data["take"])] = event
    breaks: list[ChainBreak] = []
    for take, seg_events in segments.items():
        recording = filed.get(take)
        blobs = (recording or {}).get("data", {}).get("blobs") or []
        if recording is None or not blobs:
            continue  # still recording, or unfiled (reported by the unfiled check)
        handle = open_file(str(blobs[0].get("key")), str(blobs[0].get("sha256")))
        if handle is None:
            continue  # missing or purged: the blob check reports it
        with handle:
            breaks += _check_take(take, seg_events, handle, recording.get("seq"))
    return breaks


def _check_take(
    take: str, seg_events: list[Mapping[str, Any]], handle: BinaryIO, filed_seq: Any
) -> list[ChainBreak]:
    expected = header_end(handle)
    handle.seek(0, 2)
    size = handle.tell()
    final: Mapping[str, Any] | None = None
    for number, event in enumerate(seg_events):
        data, seq = event["data"], event.get("seq")
        lo, hi = (int(v) for v in data.get("bytes", [0, 0]))
        if data.get("index") != number or lo != expected:
            return [ChainBreak(seq, f"{_describe(take, data)}: not contiguous with the one before")]
        if read_piece(handle, lo, hi).sha256 != data.get("sha256"):
            return [ChainBreak(seq, f"{_describe(take, data)}: bytes differ from their hash")]
        expected = hi
        if data.get("final"):
            final = event
            break
    if final is None:
        return [ChainBreak(filed_seq, f"recording {take}: no final segment on the chain")]
    header = final["data"].get("header") or {}
    end = int(header.get("bytes", [0, 0])[1])
    handle.seek(0)
    if hashlib.sha256(handle.read(end)).hexdigest() != header.get("sha256"):
        return [ChainBreak(final.get("seq"), f"recording {take}: header bytes 0–{end} differ")]
    if expected != size:
        return [
            ChainBreak(
                final.get("seq"),
                f"recording {take}: the file has {size} bytes, its segments end at {expected}",
            )
        ]
    return []
