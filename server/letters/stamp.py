"""The visible electronic seal (电子印章): a red round seal with the agency's name.

A Chinese official seal is a red ring with the organisation's name running clockwise
along the upper arc, a five-pointed star in the middle and the seal's purpose below it.
The picture is only the *appearance* of the PAdES signature field: what proves anything
is the signature behind it (a copied picture proves nothing, and verification never
looks at it). It is drawn with Pillow in the CJK font the PDFs use, at 600 px for a
~42 mm seal (about 360 dpi), on a transparent background so the text under it shows.
"""

from __future__ import annotations

import functools
import math

from PIL import Image, ImageDraw, ImageFont

from server.fonts import find_cjk_font

RED = (200, 16, 30, 235)
SIZE = 600
PURPOSE = "电子印章"


def _font(size: int) -> ImageFont.FreeTypeFont:
    font = find_cjk_font()
    return ImageFont.truetype(str(font.path), size, index=font.index)


def _star(cx: float, cy: float, outer: float) -> list[tuple[float, float]]:
    inner = outer * 0.382  # the regular star's ratio
    points = []
    for i in range(10):
        r = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def _glyph(char: str, font: ImageFont.FreeTypeFont) -> Image.Image:
    box = font.getbbox(char)
    side = int(max(box[2] - box[0], box[3] - box[1]) * 1.3) + 4
    tile = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((side / 2, side / 2), char, font=font, fill=RED, anchor="mm")
    return tile


@functools.lru_cache(maxsize=8)
def seal_image(agency: str, purpose: str = PURPOSE) -> Image.Image:
    """The seal as an RGBA image (cached: one agency name per deployment)."""
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    c = SIZE / 2
    ring = 18
    draw.ellipse((ring / 2, ring / 2, SIZE - ring / 2, SIZE - ring / 2), outline=RED, width=ring)
    draw.polygon(_star(c, c, SIZE * 0.15), fill=RED)
    name = agency.strip() or "电子印章"
    size = 72 if len(name) <= 10 else max(40, int(72 * 10 / len(name)))
    font = _font(size)
    span = math.radians(min(250.0, 24.0 * len(name) * size / 60))
    radius = c - ring - size * 0.72
    for i, char in enumerate(name):
        # clockwise along the top, from lower left to lower right, tops facing outwards
        theta = -span / 2 + (span * i / (len(name) - 1) if len(name) > 1 else span / 2)
        tile = _glyph(char, font).rotate(-math.degrees(theta), resample=Image.Resampling.BICUBIC)
        x = c + radius * math.sin(theta) - tile.width / 2
        y = c - radius * math.cos(theta) - tile.height / 2
        image.alpha_composite(tile, (int(x), int(y)))
    draw.text((c, c + SIZE * 0.27), purpose, font=_font(52), fill=RED, anchor="mm")
    return image
