from __future__ import annotations

import io

import jsonschema
import pytest
from PIL import Image

from recordings.annotations import SHAPES_SCHEMA, annotate, annotate_jpeg
from recordings.errors import InvalidAnnotationError

SHAPES = [
    {"type": "arrow", "from": [20, 20], "to": [150, 100], "color": "#00ff00", "width": 4},
    {"type": "circle", "center": [320, 240], "radius": 40, "color": "red"},
    {"type": "rect", "from": [400, 50], "to": [600, 150], "color": "#0000ff", "width": 3},
    {"type": "text", "at": [40, 400], "text": "裂缝 crack", "size": 32, "color": "yellow"},
]


def grey() -> Image.Image:
    return Image.new("RGB", (640, 480), (128, 128, 128))


def test_shapes_validate_against_schema() -> None:
    jsonschema.validate(SHAPES, SHAPES_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"type": "blob"}], SHAPES_SCHEMA)


def test_annotation_draws_on_a_copy() -> None:
    source = grey()
    before = source.tobytes()
    out = annotate(source, SHAPES)
    assert source.tobytes() == before
    assert out.getpixel((320, 200)) == (255, 0, 0)  # top of the circle outline
    assert out.getpixel((320, 240)) == (128, 128, 128)  # its inside stays
    assert out.getpixel((500, 50)) == (0, 0, 255)  # rectangle edge
    assert out.getpixel((85, 60)) == (0, 255, 0)  # along the arrow shaft
    text_box = out.crop((40, 400, 240, 440))
    assert (255, 255, 0) in {c for _, c in text_box.getcolors(10000) or []}


def test_annotate_jpeg_round_trip() -> None:
    buf = io.BytesIO()
    grey().save(buf, format="JPEG")
    data = annotate_jpeg(buf.getvalue(), SHAPES[:1])
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    assert data != buf.getvalue()


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ({"type": "arrow", "from": [0, 0], "to": [700, 10]}, "outside"),
        ({"type": "circle", "center": [10, 10], "radius": -3}, "radius"),
        ({"type": "text", "at": [10, 10], "text": "  "}, "empty"),
        ({"type": "rect", "from": [0, 0], "to": [1, 1], "color": "nope"}, "colour"),
        ({"type": "star", "at": [1, 1]}, "unknown type"),
    ],
)
def test_bad_shapes_name_the_problem(shape: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidAnnotationError) as info:
        annotate(grey(), [shape])
    assert words in str(info.value)
    assert "Shape 0" in str(info.value)
