"""Annotations: arrows, circles, rectangles and text drawn on a *copy* of a snapshot.

The inspector marks a crack or a missing fire extinguisher; the result is a third,
derived image. The original and the watermarked image are never rewritten, so the
hashes recorded when the snapshot was taken stay valid. Shapes are given in pixel
coordinates of the snapshot (the page scales from its display size), validated by
:data:`SHAPES_SCHEMA` at the edge and again here with errors that say which shape is wrong.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFont

from recordings.errors import InvalidAnnotationError
from server.fonts import FontFile, find_cjk_font

MAX_SHAPES = 50

_POINT = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_COMMON = {
    "color": {"type": "string", "maxLength": 32},
    "width": {"type": "number", "minimum": 1, "maximum": 40},
}
SHAPES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": MAX_SHAPES,
    "items": {
        "oneOf": [
            {
                "type": "object",
                "properties": {"type": {"const": "arrow"}, "from": _POINT, "to": _POINT, **_COMMON},
                "required": ["type", "from", "to"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "type": {"const": "circle"},
                    "center": _POINT,
                    "radius": {"type": "number", "exclusiveMinimum": 0},
                    **_COMMON,
                },
                "required": ["type", "center", "radius"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"type": {"const": "rect"}, "from": _POINT, "to": _POINT, **_COMMON},
                "required": ["type", "from", "to"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "type": {"const": "text"},
                    "at": _POINT,
                    "text": {"type": "string", "minLength": 1, "maxLength": 200},
                    "size": {"type": "number", "minimum": 8, "maximum": 200},
                    **_COMMON,
                },
                "required": ["type", "at", "text"],
                "additionalProperties": False,
            },
        ]
    },
}

DEFAULT_COLOR = "#ff2d2d"


def _point(
    shape: Mapping[str, Any], key: str, index: int, size: tuple[int, int]
) -> tuple[float, float]:
    value = shape.get(key)
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in value)
    ):
        raise InvalidAnnotationError(
            message="Shape %(index)s: '%(key)s' must be a point [x, y]",
            params={"index": index, "key": key},
        )
    x, y = float(value[0]), float(value[1])
    if not (0 <= x <= size[0] and 0 <= y <= size[1]):
        raise InvalidAnnotationError(
            message="Shape %(index)s: '%(key)s' lies outside the %(width)sx%(height)s image",
            params={"index": index, "key": key, "width": size[0], "height": size[1]},
        )
    return x, y


def _colour(shape: Mapping[str, Any], index: int) -> tuple[int, int, int]:
    try:
        rgb = ImageColor.getrgb(str(shape.get("color", DEFAULT_COLOR)))
    except ValueError:
        raise InvalidAnnotationError(
            message="Shape %(index)s: unknown colour", params={"index": index}
        ) from None
    return rgb[0], rgb[1], rgb[2]


def _arrow(
    draw: ImageDraw.ImageDraw,
    a: tuple[float, float],
    b: tuple[float, float],
    colour: Any,
    width: int,
) -> None:
    draw.line((a, b), fill=colour, width=width)
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    head = max(10.0, width * 4.0)
    left = (b[0] - head * math.cos(angle - 0.45), b[1] - head * math.sin(angle - 0.45))
    right = (b[0] - head * math.cos(angle + 0.45), b[1] - head * math.sin(angle + 0.45))
    draw.polygon((b, left, right), fill=colour)


def annotate(
    image: Image.Image, shapes: Sequence[Mapping[str, Any]], font: FontFile | None = None
) -> Image.Image:
    """Return a new image with ``shapes`` drawn; ``image`` is left as it was."""
    if len(shapes) > MAX_SHAPES:
        raise InvalidAnnotationError(
            message="At most %(max)s shapes per annotation", params={"max": MAX_SHAPES}
        )
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    size = out.size
    default_width = max(2, round(min(size) / 160))
    face: FontFile | None = font
    for index, shape in enumerate(shapes):
        kind = shape.get("type")
        colour = _colour(shape, index)
        width = int(shape.get("width", default_width))
        if kind == "arrow":
            _arrow(
                draw,
                _point(shape, "from", index, size),
                _point(shape, "to", index, size),
                colour,
                width,
            )
        elif kind == "rect":
            (x0, y0), (x1, y1) = (
                _point(shape, "from", index, size),
                _point(shape, "to", index, size),
            )
            draw.rectangle(
                (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour, width=width
            )
        elif kind == "circle":
            cx, cy = _point(shape, "center", index, size)
            radius = shape.get("radius")
            if not isinstance(radius, int | float) or not 0 < radius <= max(size):
                raise InvalidAnnotationError(
                    message="Shape %(index)s: radius must be positive", params={"index": index}
                )
            draw.ellipse(
                (cx - radius, cy - radius, cx + radius, cy + radius), outline=colour, width=width
            )
        elif kind == "text":
            text = shape.get("text")
            if not isinstance(text, str) or not text.strip():
                raise InvalidAnnotationError(
                    message="Shape %(index)s: text is empty", params={"index": index}
                )
            face = face or find_cjk_font()
            px = int(shape.get("size", max(14, round(min(size) / 20))))
            typeface = ImageFont.truetype(str(face.path), size=px, index=face.index)
            draw.text(
                _point(shape, "at", index, size),
                text,
                font=typeface,
                fill=colour,
                stroke_width=max(1, px // 12),
                stroke_fill=(0, 0, 0),
            )
        else:
            raise InvalidAnnotationError(
                message="Shape %(index)s: unknown type %(kind)s",
                params={"index": index, "kind": repr(kind)},
            )
    return out


def annotate_jpeg(
    data: bytes, shapes: Sequence[Mapping[str, Any]], font: FontFile | None = None
) -> bytes:
    """Annotate an encoded image (the watermarked JPEG) and return the derived JPEG."""
    with Image.open(io.BytesIO(data)) as source:
        source.load()
        result = annotate(source, shapes, font)
    out = io.BytesIO()
    result.save(out, format="JPEG", quality=90)
    return out.getvalue()
