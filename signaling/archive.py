"""The recording of one live room: one WebM file per publishing participant.

The relay hands every forwarded packet to ``feed`` (its ``on_packet`` hook); packets are
muxed as they are by ``recordings.recorder.Recorder`` (no decoding, no encoding), so the
recording costs almost nothing next to the forwarding. A participant who reconnects keeps
their file: the relay keeps their publication and its timestamps across the reconnect.

When the room closes, ``close`` finishes every file and returns what was written (path,
size, SHA-256, duration) for the case timeline.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import av

from recordings.recorder import Recorder, RecordingResult

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class RoomRecording:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._recorders: dict[str, Recorder] = {}
        self._failed: set[str] = set()
        self.closed = False

    def feed(self, participant: str, kind: str, packet: av.Packet[Any]) -> None:
        if self.closed or participant in self._failed:
            return
        recorder = self._recorders.get(participant)
        if recorder is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = _SAFE.sub("_", participant)
            recorder = self._recorders[participant] = Recorder(self.directory / f"{name}.webm")
        try:
            recorder.write(kind, packet)
        except Exception:  # a full disk must not stop the call; the log says whose file
            log.exception("recording of %s in %s failed; stopped", participant, self.directory)
            self._failed.add(participant)

    def close(self) -> list[tuple[str, RecordingResult]]:
        """Finish every file; ``(participant, result)`` for those that hold media."""
        self.closed = True
        results = []
        for participant, recorder in self._recorders.items():
            try:
                result = recorder.close()
            except Exception:
                log.exception("closing the recording of %s failed", participant)
                continue
            if result.video_packets or result.audio_packets:
                results.append((participant, result))
        return results
