"""Real VP8 packets of a known test pattern, made with PyAV's libvpx encoder.

Four coloured quadrants (large enough that VP8's chroma subsampling and quantisation
leave their centres within a few levels) plus a grey square whose shade encodes the
frame number, so a test can tell the newest frame from the keyframe.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
from PIL import Image, ImageDraw

from signaling.packets import vp8_is_keyframe

QUADRANTS = ((230, 30, 30), (30, 200, 30), (30, 30, 230), (240, 240, 240))


def pattern(width: int, height: int, number: int) -> Image.Image:
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    half_w, half_h = width // 2, height // 2
    boxes = (
        (0, 0, half_w, half_h),
        (half_w, 0, width, half_h),
        (0, half_h, half_w, height),
        (half_w, half_h, width, height),
    )
    for box, colour in zip(boxes, QUADRANTS, strict=True):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
    shade = min(255, 20 * number)
    draw.rectangle((16, 16, 79, 79), fill=(shade, shade, shade))
    return image


def shade_of(number: int) -> int:
    return min(255, 20 * number)


def encode(frames: int, width: int = 640, height: int = 480) -> list[av.Packet[Any]]:
    """``frames`` packets: one keyframe then inter frames (libvpx realtime settings)."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.bit_rate = 3_000_000
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "g": "1000"}
    packets: list[av.Packet[Any]] = []
    for number in range(frames):
        frame = av.VideoFrame.from_image(pattern(width, height, number)).reformat(format="yuv420p")
        frame.pts = number
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    return packets


def as_rtp_payloads(packets: list[av.Packet[Any]]) -> list[av.Packet[Any]]:
    """The packets as the relay sees them: bare bytes, no libav keyframe flag."""
    return [av.Packet(bytes(packet)) for packet in packets]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def moving_pattern(number: int) -> Image.Image:
    """The test pattern with a bar that moves every frame: an inter frame decoded against
    the wrong reference puts the bar (or its smear) in the wrong place."""
    image = pattern(320, 240, number)
    x = (number * 6) % 300
    ImageDraw.Draw(image).rectangle((x, 100, x + 19, 200), fill=(255, 255, 0))
    return image


def encode_moving(first: int, count: int) -> list[av.Packet[Any]]:
    """VP8 packets of frames ``first``… (the first a key frame), as the relay sees them."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.bit_rate = 1_000_000
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "g": "1000", "lag-in-frames": "0"}
    packets: list[av.Packet[Any]] = []
    for number in range(first, first + count):
        frame = av.VideoFrame.from_image(moving_pattern(number)).reformat(format="yuv420p")
        frame.pts = number
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    assert len(packets) == count
    out = []
    for number, packet in zip(range(first, first + count), packets, strict=True):
        data = bytes(packet)
        out.append(_timed(data, number * 3000, vp8_is_keyframe(data)))
    return out


def _timed(data: bytes, pts: int, key: bool) -> av.Packet[Any]:
    packet = av.Packet(data)
    packet.pts = pts
    packet.time_base = Fraction(1, 90000)
    packet.is_keyframe = key
    return packet
