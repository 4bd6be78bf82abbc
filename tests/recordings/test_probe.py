from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from recordings.probe import media_seconds
from tests.recordings.pattern import encode


def test_duration_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.webm"
    packets = encode(61, 160, 120)
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_mux_stream("vp8", width=160, height=120)
        stream.time_base = Fraction(1, 1000)
        for number, packet in enumerate(packets):
            copy = av.Packet(bytes(packet))
            copy.pts = copy.dts = number * 50  # 20 fps: 60 intervals = 3 s
            copy.time_base = Fraction(1, 1000)
            copy.stream = stream
            container.mux(copy)
    assert abs(media_seconds(path) - 3.0) < 0.01


def test_unreadable_file_is_zero(tmp_path: Path) -> None:
    path = tmp_path / "broken.webm"
    path.write_bytes(b"\x1a\x45\xdf\xa3 not really")
    assert media_seconds(path) == 0.0
