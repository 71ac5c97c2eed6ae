"""Checks at the gateway, before a job is queued: a JPEG or PNG, complete, of sane dimensions.

Only the header is parsed here (cheap, and by hand: ultralytics patches PIL's ``Image.open``);
the worker decodes. A truncated file is caught by its
missing end marker (JPEG EOI, PNG IEND), which the decoders would otherwise paper over.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

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
        raise Invalid(
            f"the {media.split('/')[1].upper()} is truncated (no end marker)", field=field
        )
    size = png_size(data) if media == "image/png" else jpeg_size(data)
    if size is None:
        raise Invalid("the image header cannot be read", field=field)
    width, height = size
    if width <= 0 or height <= 0:
        raise Invalid("the image has no pixels", field=field)
    if width * height > max_pixels:
        raise Invalid(
            f"the image is {width} x {height}, over the limit of {max_pixels} pixels", field=field
        )
    return CheckedImage(hashlib.sha256(data).hexdigest(), width, height, media)


# JPEG start-of-frame markers (baseline, progressive, lossless...): they carry the dimensions.
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD9)}


def png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the segments up to the first start-of-frame; None when there is none before the scan."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in STANDALONE_MARKERS:
            i += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in SOF_MARKERS:
            if i + 9 > len(data) or length < 7:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None
