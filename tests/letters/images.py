"""Signature images for tests: drawn with Pillow the way the pad draws them."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def signature_png(*, ink: bool = True, size: tuple[int, int] = (600, 200)) -> bytes:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    if ink:
        draw = ImageDraw.Draw(image)
        points = [(50, 150), (150, 50), (250, 150), (350, 60), (500, 140)]
        draw.line(points, fill=(20, 20, 20, 255), width=6)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
