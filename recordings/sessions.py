"""Every session recorded: one WebM per participant, from the relay's packet callback.

The relay offers each forwarded packet to ``on_packet(participant, kind, packet)``; a
:class:`SessionRecordings` turns that into one :class:`recordings.recorder.Recorder` per
(room, participant), created on the participant's first packet, under
``<root>/<room>/<participant>-<start>.webm``. A reconnecting participant keeps writing the
same file (the recorder re-anchors its clock). When the room ends, :meth:`finish` closes
the files and hands back what was recorded; the caller moves each file into the blob
store and onto the case (``recordings.evidence.register_recording``).

Writes are synchronous and cheap (muxing, no codec), as the recorder requires; closing
hashes the file, so :meth:`finish` does that in a thread. A recorder that fails is
dropped with a log line; the session itself goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from recordings.recorder import Recorder, RecordingResult

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class FinishedRecording:
    room: str
    participant: str
    result: RecordingResult
    started_at: dt.datetime
    ended_at: dt.datetime


class SessionRecordings:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._recorders: dict[str, dict[str, Recorder]] = {}
        self._started: dict[tuple[str, str], float] = {}
        self._failed: set[tuple[str, str]] = set()

    def callback(self, room: str) -> Callable[[str, str, av.Packet[Any]], None]:
        """The ``on_packet`` to give the relay room ``room``."""

        def on_packet(participant: str, kind: str, packet: av.Packet[Any]) -> None:
            self.feed(room, participant, kind, packet)

        return on_packet

    def recording(self, room: str) -> bool:
        return bool(self._recorders.get(room))

    def feed(self, room: str, participant: str, kind: str, packet: av.Packet[Any]) -> None:
        key = (room, participant)
        if key in self._failed:
            return
        recorders = self._recorders.setdefault(room, {})
        recorder = recorders.get(participant)
        if recorder is None:
            now = time.time()
            folder = self.root / _SAFE.sub("_", room)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{_SAFE.sub('_', participant)}-{int(now * 1000)}.webm"
            recorder = recorders[participant] = Recorder(folder / name)
            self._started[key] = now
        try:
            recorder.write(kind, packet)
        except Exception:
            log.exception("recording of %s in %s failed; it stops here", participant, room)
            self._failed.add(key)

    async def finish(self, room: str) -> list[FinishedRecording]:
        """Close the room's files; the results of those that hold any media."""
        recorders = self._recorders.pop(room, {})
        ended = dt.datetime.now(dt.UTC)
        out: list[FinishedRecording] = []
        for participant, recorder in recorders.items():
            key = (room, participant)
            started = self._started.pop(key, time.time())
            self._failed.discard(key)
            try:
                result = await asyncio.to_thread(recorder.close)
            except Exception:
                log.exception("closing the recording of %s in %s failed", participant, room)
                continue
            if result.size == 0 or (result.video_packets + result.audio_packets) == 0:
                result.path.unlink(missing_ok=True)
                continue
            begin = result.started_at if result.started_at is not None else started
            out.append(
                FinishedRecording(
                    room=room,
                    participant=participant,
                    result=result,
                    started_at=dt.datetime.fromtimestamp(begin, dt.UTC),
                    ended_at=ended,
                )
            )
        return out

    async def close(self) -> list[FinishedRecording]:
        """Finish every room (shutdown)."""
        done: list[FinishedRecording] = []
        for room in list(self._recorders):
            done.extend(await self.finish(room))
        return done
