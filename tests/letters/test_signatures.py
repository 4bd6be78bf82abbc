from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from server.letters import signatures
from server.letters.signatures import SignatureImageError
from tests.letters.images import signature_png


def test_accepts_data_url_and_bytes() -> None:
    png = signature_png()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    for value in (url, png):
        image = signatures.accept(value)
        assert image.png == png and image.ink_pixels >= signatures.MIN_INK_PIXELS
        assert len(image.sha256) == 64


def _png_of(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 100), "white").save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (signature_png(ink=False), "signature_empty"),
        (_png_of(Image.new("RGB", (600, 200), "white")), "signature_empty"),
        (_png_of(Image.new("L", (20, 20), 0)), "signature_empty"),  # a black dot: tiny box
        (b"GIF89a....", "signature_invalid"),
        (_jpeg(), "signature_invalid"),
        (signature_png()[:200], "signature_invalid"),
        ("data:image/jpeg;base64,AAAA", "signature_invalid"),
        ("data:image/png;base64,@@@@", "signature_invalid"),
        (signature_png(size=(4000, 100)), "signature_too_large"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (signatures.MAX_BYTES + 1), "signature_too_large"),
        ("A" * (signatures.MAX_BYTES * 2), "signature_too_large"),
    ],
)
def test_refuses_bad_images(value: str | bytes, code: str) -> None:
    with pytest.raises(SignatureImageError) as info:
        signatures.accept(value)
    assert info.value.code == code


def test_corrupted_crc_is_refused() -> None:
    png = bytearray(signature_png())
    png[40] ^= 0xFF  # inside the first IDAT chunk: its CRC no longer matches
    with pytest.raises(SignatureImageError):
        signatures.accept(bytes(png))
