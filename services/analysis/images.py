"""Checks at the gateway, before a job is queued: a JPEG or PNG, complete, of sane dimensions.

Only the header is parsed here (cheap); the worker decodes. A truncated file is caught by its
missing end marker (JPEG EOI, PNG IEND), which the decoders would otherwise paper over.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image

from shared.errors import Invalid

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_END = b"\xff\xd9"
PNG_END = b"IEND\xaeB`\x82"


@dataclass(frozen=True)
class CheckedImage:
    sha256: str
    width: int
    height: int
    media_type: str


def check_image(data: bytes, *, max_pixels: int, field: str = "image") -> CheckedImage:
    if not data:
        raise Invalid("the image is empty (zero bytes)", field=field)
    if data.startswith(JPEG_MAGIC):
        media, complete = "image/jpeg", data.rstrip(b"\x00\r\n ").endswith(JPEG_END)
    elif data.startswith(PNG_MAGIC):
        media, complete = "image/png", data.endswith(PNG_END)
    else:
        raise Invalid("the image must be a JPEG or PNG", field=field)
    if not complete:
        raise Invalid(f"the {media.split('/')[1].upper()} is truncated (no end marker)", field=field)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:
        raise Invalid(f"the image is over the limit of {max_pixels} pixels", field=field) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise Invalid(f"the image header cannot be read ({exc})", field=field) from None
    if width <= 0 or height <= 0:
        raise Invalid("the image has no pixels", field=field)
    if width * height > max_pixels:
        raise Invalid(f"the image is {width} x {height}, over the limit of {max_pixels} pixels", field=field)
    return CheckedImage(hashlib.sha256(data).hexdigest(), width, height, media)
