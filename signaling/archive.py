"""The recording of one live room: one WebM file per publishing participant.

The relay hands every forwarded packet to ``feed`` (its ``on_packet`` hook); packets are
muxed as they are by ``recordings.recorder.Recorder`` (no decoding, no encoding), so the
recording costs almost nothing next to the forwarding. A participant who reconnects keeps
their file: the relay keeps their publication and its timestamps across the reconnect.

When frames are lost on the way in, the recorder skips what cannot be decoded until the
next key frame: ``request_keyframe(participant)`` asks the publisher for one at once, and
``on_gap(participant, gap)`` reports the hole when the picture resumes (live puts it on the
case as a ``recording.gap`` event).

Every recorder marks how far its file has grown every 10 s, at a pause in the stream and
when it closes; ``on_segment(participant, path, mark)`` receives those marks (live hands
them to ``recordings.segments.SegmentLog``, which hashes them onto the case chain).

When the room closes, ``close`` finishes every file and returns what was written (path,
size, SHA-256, duration, re-timed and skipped frames, gaps) for the case timeline.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from recordings.recorder import Recorder, RecordingGap, RecordingResult
from recordings.segments import Mark
from signaling.packets import frame_number

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class RoomRecording:
    def __init__(
        self,
        directory: Path,
        *,
        request_keyframe: Callable[[str], None] | None = None,
        on_gap: Callable[[str, RecordingGap], None] | None = None,
        on_segment: Callable[[str, Path, Mark], None] | None = None,
    ) -> None:
        self.directory = directory
        self.request_keyframe = request_keyframe
        self.on_gap = on_gap
        self.on_segment = on_segment
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
            recorder.on_loss = functools.partial(self._loss, participant)
            recorder.on_gap = functools.partial(self._gap, participant)
            if self.on_segment is not None:
                recorder.on_segment = functools.partial(self.on_segment, participant, recorder.path)
        try:
            recorder.write(kind, packet, frame=frame_number(packet))
        except Exception:  # a full disk must not stop the call; the log says whose file
            log.exception("recording of %s in %s failed; stopped", participant, self.directory)
            self._failed.add(participant)

    def _loss(self, participant: str) -> None:
        if self.request_keyframe is not None:
            self.request_keyframe(participant)

    def _gap(self, participant: str, gap: RecordingGap) -> None:
        log.warning("recording of %s in %s: %s", participant, self.directory, gap)
        if self.on_gap is not None and not self.closed:
            self.on_gap(participant, gap)

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
