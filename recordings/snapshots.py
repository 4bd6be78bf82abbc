"""Snapshots: the current frame of a forwarded VP8 stream, kept as evidence.

The relay never decodes, so a snapshot starts from encoded packets: the relay keeps the
packets of each video stream since its last keyframe (``room.latest_video_packets``).
VP8 has no B-frames, so the newest frame needs exactly the packets from the last
keyframe to the newest one, decoded in order; only the last decoded frame is converted
to RGB, which is the expensive step. The work is CPU-bound and synchronous: handlers run
:func:`take_snapshot` in an executor so the event loop keeps forwarding media.

Two images are stored. The *original* is the decoded frame as PNG (lossless, so pixel
comparisons and later re-examination see exactly what was decoded). The *watermarked*
copy is a JPEG with a semi-transparent band at the bottom carrying who, when and where;
the band darkens whatever is under it and the text has a dark outline, so it stays
legible on a white wall as well as in a dark cellar.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import av
from PIL import Image, ImageDraw, ImageFont

from recordings.errors import NoVideoError, SnapshotDecodeError
from recordings.location import GeoFix
from server.fonts import FontFile, find_cjk_font

ORIGINAL_SUFFIX = ".png"
WATERMARKED_SUFFIX = ".jpg"
JPEG_QUALITY = 90
BAND_ALPHA = 150  # of 255: dark enough for white text on snow, light enough to see through


@dataclass(frozen=True, slots=True)
class WatermarkInfo:
    """Everything printed on the picture. ``taken_at`` must be timezone-aware."""

    taken_at: datetime
    timezone: str
    case_number: str
    matter: str
    inspector: str
    location: GeoFix | None = None
    checklist_item: str | None = None

    def lines(self) -> list[str]:
        if self.taken_at.tzinfo is None:
            raise ValueError("WatermarkInfo.taken_at must be timezone-aware")
        local = self.taken_at.astimezone(ZoneInfo(self.timezone))
        offset = local.strftime("%z")
        first = f"{local:%Y-%m-%d %H:%M:%S} UTC{offset[:3]}:{offset[3:]}  {self.case_number}"
        lines = [first, f"{self.matter}  勘验人员: {self.inspector}"]
        where = f"位置: {self.location.label()}" if self.location else "位置: 未共享"
        if self.checklist_item:
            where += f"  检查项: {self.checklist_item}"
        lines.append(where)
        return lines


@dataclass(frozen=True, slots=True)
class SnapshotImages:
    original: bytes
    watermarked: bytes
    width: int
    height: int
    band_top: int  # first row of the watermark band (tests and the page use it)


def is_vp8_keyframe(packet: av.Packet[Any]) -> bool:
    """Bit 0 of the VP8 frame tag is 0 on keyframes (RFC 6386 §9.1).

    Packets rebuilt from RTP payloads (``av.Packet(bytes)``) do not carry libav's keyframe
    flag, so we read the bitstream rather than trusting ``packet.is_keyframe``.
    """
    data = bytes(packet)
    return len(data) >= 3 and data[0] & 0x01 == 0


def latest_frame(packets: Sequence[av.Packet[Any]]) -> av.VideoFrame:
    """Decode from the last keyframe in ``packets`` to the end; return the newest frame."""
    start = None
    for index in range(len(packets) - 1, -1, -1):
        if is_vp8_keyframe(packets[index]):
            start = index
            break
    if start is None:
        raise NoVideoError()
    decoder = av.CodecContext.create("vp8", "r")
    newest: av.VideoFrame | None = None
    for packet in packets[start:]:
        try:
            frames = decoder.decode(packet)
        except av.error.FFmpegError:
            # A damaged inter frame (lost RTP packet) spoils what follows; keep the last good one.
            break
        for frame in frames:
            newest = frame
    if newest is None:
        raise SnapshotDecodeError()
    return newest


@dataclass(frozen=True, slots=True)
class _Band:
    size: int  # font size in pixels
    pad: int
    line_height: int
    top: int


def _band(width: int, height: int, lines: int) -> _Band:
    """Band geometry scaled to the frame, so a 320x240 phone stream and 1080p look alike."""
    size = max(12, round(min(width, height) / 26))
    pad = max(4, size // 3)
    line_height = round(size * 1.3)
    return _Band(size, pad, line_height, max(0, height - (pad * 2 + line_height * lines)))


def band_top(width: int, height: int, info: WatermarkInfo) -> int:
    """First row of the band :func:`watermark` draws on an image of this size."""
    return _band(width, height, len(info.lines())).top


def watermark(image: Image.Image, info: WatermarkInfo, font: FontFile | None = None) -> Image.Image:
    """Return a copy of ``image`` with the evidence band; ``image`` itself is not changed."""
    face = font or find_cjk_font()
    lines = info.lines()
    width, height = image.size
    band = _band(width, height, len(lines))
    typeface = ImageFont.truetype(str(face.path), size=band.size, index=face.index)

    base = image.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, band.top, width, height), fill=(0, 0, 0, BAND_ALPHA))
    stroke = max(1, band.size // 12)
    for number, line in enumerate(lines):
        draw.text(
            (band.pad, band.top + band.pad + number * band.line_height),
            line,
            font=typeface,
            fill=(255, 255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 255),
        )
    return Image.alpha_composite(base, overlay).convert("RGB")


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    # compress_level=1: a 640x480 frame in ~15 ms instead of ~80 ms at the default, same pixels.
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def encode_jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return out.getvalue()


def take_snapshot(
    packets: Sequence[av.Packet[Any]], info: WatermarkInfo, font: FontFile | None = None
) -> SnapshotImages:
    """Decode the newest frame and render both evidence images (blocking; run off-loop)."""
    frame = latest_frame(packets)
    image = frame.to_image()  # type: ignore[no-untyped-call]
    marked = watermark(image, info, font)
    return SnapshotImages(
        original=encode_png(image),
        watermarked=encode_jpeg(marked),
        width=image.width,
        height=image.height,
        band_top=band_top(image.width, image.height, info),
    )
