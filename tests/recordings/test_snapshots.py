from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from PIL import Image, ImageChops, ImageStat

from recordings.errors import NoVideoError
from recordings.location import GeoFix
from recordings.snapshots import (
    WatermarkInfo,
    band_top,
    is_vp8_keyframe,
    latest_frame,
    take_snapshot,
    watermark,
)
from tests.recordings.pattern import QUADRANTS, as_rtp_payloads, close, encode, pattern, shade_of

INFO = WatermarkInfo(
    taken_at=datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC),
    timezone="Asia/Shanghai",
    case_number="YK-20261122-0001",
    matter="种子生产经营许可证变更",
    inspector="王勘验",
    location=GeoFix(30.65432, 104.06543, 12),
    checklist_item="仓储条件",
)


def quadrant_centres(width: int, height: int) -> list[tuple[int, int]]:
    return [
        (width // 4, height // 4 + 40),
        (3 * width // 4, height // 4),
        (width // 4, 3 * height // 4),
        (3 * width // 4, 3 * height // 4),
    ]


def test_keyframe_bit_read_from_bitstream() -> None:
    packets = as_rtp_payloads(encode(3))
    assert [is_vp8_keyframe(p) for p in packets] == [True, False, False]


def test_original_is_the_newest_decoded_frame() -> None:
    packets = as_rtp_payloads(encode(7))
    shot = take_snapshot(packets, INFO)
    original = Image.open(io.BytesIO(shot.original))
    assert original.format == "PNG"
    assert original.size == (640, 480) == (shot.width, shot.height)
    rgb = original.convert("RGB")
    for point, colour in zip(quadrant_centres(640, 480), QUADRANTS, strict=True):
        assert close(rgb.getpixel(point), colour), (point, rgb.getpixel(point), colour)
    # The frame-number square shows frame 6, not the keyframe's 0.
    assert close(rgb.getpixel((48, 48)), (shade_of(6),) * 3)


def test_decoding_starts_at_the_last_keyframe() -> None:
    # Garbage before the keyframe must be ignored, as the relay may hand us a longer window.
    first = as_rtp_payloads(encode(2))
    second = as_rtp_payloads(encode(4))
    frame = latest_frame([*first, *second])
    assert close(frame.to_image().getpixel((48, 48)), (shade_of(3),) * 3)


def test_watermark_band_changes_only_the_band() -> None:
    shot = take_snapshot(as_rtp_payloads(encode(2)), INFO)
    original = Image.open(io.BytesIO(shot.original)).convert("RGB")
    marked = Image.open(io.BytesIO(shot.watermarked))
    assert marked.format == "JPEG"
    top = shot.band_top
    assert 300 < top < 480
    width, height = original.size
    above = (0, 0, width, top - 8)
    band = (0, top, width, height)
    diff_above = ImageStat.Stat(ImageChops.difference(original.crop(above), marked.crop(above)))
    diff_band = ImageStat.Stat(ImageChops.difference(original.crop(band), marked.crop(band)))
    assert max(diff_above.mean) < 3  # only JPEG noise above the band
    assert min(diff_band.mean) > 30  # the band is darkened and carries text


@pytest.mark.parametrize("level", [0, 255])
def test_text_legible_on_dark_and_bright_frames(level: int) -> None:
    image = Image.new("RGB", (640, 480), (level, level, level))
    marked = watermark(image, INFO)
    top = band_top(640, 480, INFO)
    band = marked.crop((0, top, 640, 480)).convert("L")
    lo, hi = band.getextrema()
    # White glyphs with dark outline on a darkened band: strong contrast either way.
    assert hi >= 230 and lo <= 110, (lo, hi)
    assert image.getpixel((10, 470)) == (level, level, level)  # the input is untouched


def test_watermark_lines_in_agency_zone() -> None:
    lines = INFO.lines()
    assert lines[0].startswith("2026-11-22 11:04:05 UTC+08:00  YK-20261122-0001")
    assert "王勘验" in lines[1] and "30.65432,104.06543 ±12m" in lines[2]
    assert "仓储条件" in lines[2]


def test_no_packets_is_a_domain_error() -> None:
    with pytest.raises(NoVideoError):
        take_snapshot([], INFO)


def test_no_keyframe_is_a_domain_error() -> None:
    inter_only = as_rtp_payloads(encode(4))[1:]
    with pytest.raises(NoVideoError):
        take_snapshot(inter_only, INFO)


def test_pattern_helper_is_deterministic() -> None:
    assert pattern(64, 48, 1).tobytes() == pattern(64, 48, 1).tobytes()
