"""Handwritten signature images from the signature pad: checked before anything is stored.

The pad posts ``canvas.toDataURL("image/png")``. We keep the exact bytes the signer sent
(their hash goes into the timeline and the audit page), so the checks are about whether
those bytes are a real, reasonable PNG with a real signature on it:

- really a PNG: the magic number *and* Pillow's full ``verify()`` (CRCs, chunk order);
- bounded: at most ``MAX_BYTES`` and ``MAX_WIDTH`` x ``MAX_HEIGHT``, checked from the header
  before any pixel is decoded (a 64-KB PNG can inflate to gigabytes);
- not empty: enough dark, opaque pixels ("ink") spread over a bounding box of a minimum
  size, so a blank pad or a single tap is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from server.letters.errors import LetterError

MAX_BYTES = 512 * 1024
MAX_WIDTH, MAX_HEIGHT = 3000, 1500
MIN_INK_PIXELS = 150
MIN_BOX_WIDTH, MIN_BOX_HEIGHT = 40, 12
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URL_PREFIX = "data:image/png;base64,"


class SignatureImageError(LetterError):
    status = 422
    code = "signature_invalid"
    message = "The signature must be a PNG image"


class SignatureTooLargeError(SignatureImageError):
    status = 413
    code = "signature_too_large"
    message = "The signature image is too large"


class SignatureEmptyError(SignatureImageError):
    code = "signature_empty"
    message = "The signature is empty or too small; please sign with your full name"


@dataclass(frozen=True, slots=True)
class SignatureImage:
    png: bytes
    sha256: str
    width: int
    height: int
    ink_pixels: int
    box: tuple[int, int, int, int]  # left, top, right, bottom of the ink


def decode_data_url(value: str) -> bytes:
    """The bytes of a ``data:image/png;base64,…`` URL (or of bare base64)."""
    if len(value) > MAX_BYTES * 4 // 3 + len(DATA_URL_PREFIX) + 8:
        raise SignatureTooLargeError(details={"max_bytes": MAX_BYTES})
    if value.startswith("data:"):
        if not value.startswith(DATA_URL_PREFIX):
            raise SignatureImageError()
        value = value[len(DATA_URL_PREFIX) :]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureImageError() from None


def _ink(image: Image.Image) -> tuple[int, tuple[int, int, int, int] | None]:
    """Count pixels that are both opaque and dark; the pad draws dark strokes on either a
    transparent or a white background."""
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A").point(lambda a: 255 if a >= 128 else 0)
    dark = rgba.convert("L").point(lambda v: 255 if v < 160 else 0)
    mask = Image.new("L", rgba.size, 0)
    mask.paste(dark, mask=alpha)
    histogram = mask.histogram()
    return histogram[255], mask.getbbox()


def check_png(data: bytes) -> SignatureImage:
    """Validate signature bytes; raises a ``SignatureImageError`` naming the problem."""
    if len(data) > MAX_BYTES:
        raise SignatureTooLargeError(details={"max_bytes": MAX_BYTES})
    if not data.startswith(PNG_MAGIC):
        raise SignatureImageError()
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as probe:
            width, height = probe.size
            if width > MAX_WIDTH or height > MAX_HEIGHT:
                raise SignatureTooLargeError(
                    details={"max_width": MAX_WIDTH, "max_height": MAX_HEIGHT}
                )
            probe.verify()
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            count, box = _ink(image)
    except SignatureImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise SignatureImageError() from None
    if box is None or count < MIN_INK_PIXELS:
        raise SignatureEmptyError(details={"ink_pixels": count})
    left, top, right, bottom = box
    if right - left < MIN_BOX_WIDTH or bottom - top < MIN_BOX_HEIGHT:
        raise SignatureEmptyError(details={"ink_pixels": count, "box": list(box)})
    return SignatureImage(
        png=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        ink_pixels=count,
        box=box,
    )


def accept(value: str | bytes) -> SignatureImage:
    """A data URL from the pad, or raw PNG bytes from an API client."""
    data = decode_data_url(value) if isinstance(value, str) else value
    return check_png(data)
