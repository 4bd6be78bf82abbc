"""What a recorded file actually holds, read back from the file itself.

The case records a recording's duration from the file, not from the recorder's own
bookkeeping: the file is the evidence, and the recorder's counters can disagree with it
(``Recorder.close`` computes the duration from its clock anchors, which a re-anchor after
a stall moves, so a 38 s file was once reported as 0.7 s). Demuxing reads packet headers
only, no decoding: about a second for an hour of VP8 + Opus.
"""

from __future__ import annotations

from pathlib import Path

import av


def media_seconds(path: Path) -> float:
    """Longest span between the first and last timestamp of any stream; 0 if none."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    try:
        with av.open(str(path)) as container:
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None:
                    continue
                at = float(packet.pts * packet.time_base)
                index = packet.stream.index
                first.setdefault(index, at)
                first[index] = min(first[index], at)
                last[index] = max(last.get(index, at), at)
    except av.error.FFmpegError:
        # A file cut short by a crash may end mid-cluster; what was read so far counts.
        pass
    return max((last[i] - first[i] for i in first), default=0.0)
