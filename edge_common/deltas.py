"""A lossless, model-aware patch between two package archives (uncompressed tars): ``tar-xor-zstd``.

A retrained model changes every float of its weight file, so a byte-matching diff (HDiffPatch)
finds almost nothing to reuse: after a full fine-tune its patch is ~90 % of the archive. Here each
file of the new archive that has a same-named, same-sized file in the old one is sent as the XOR
of the two (unchanged bytes XOR to zero), each 1 MiB block split into its four byte planes
(byte 0 of every 4-byte word, then byte 1, ...: float32 and float16 weights keep their sign and
exponent bytes, so those planes are nearly all zeros) and the whole stream compressed with zstd.
Everything else (tar headers, new or resized files) travels as it is, compressed. Applying needs
the old archive and streams: its memory stays a few MiB whatever the archive's size. A file whose
size changed but which is a zip in both versions (a torch ``.pt`` saved again: its tensors are
stored entries that keep their names and sizes) is matched entry by entry the same way.

Format: ``MAGIC`` then one zstd frame holding a 4-byte big-endian length, a JSON header
``{"format": FORMAT, "size": <target bytes>, "ops": [["raw", n] | ["xor", n, base_offset], ...]}``
and the ops' payloads in order (n bytes each). The result is checked by its sha256 by the caller.

Python 3.8+, standard library only except ``zstandard`` (imported when a patch is built or
applied).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

FORMAT = "tar-xor-zstd"
MAGIC = b"EDGEXOR1\n"
BLOCK = 1 << 20
WORD = 4  # byte planes of 4-byte words (float32; float16 pairs)
MIN_XOR_BYTES = 64 * 1024  # smaller files travel whole (compressed)
LEVEL = 10

if TYPE_CHECKING:  # annotations only: Python 3.8 runs this module too
    Op = tuple[str, int] | tuple[str, int, int]


class PatchError(ValueError):
    """Not a patch of this format, or one that does not fit the archive it is applied to."""


def _members(path: Path) -> dict[str, tuple[int, int]]:
    """Regular files of an uncompressed tar: name -> (offset of its data, size)."""
    out: dict[str, tuple[int, int]] = {}
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if member.isfile():
                out[member.name] = (member.offset_data, member.size)
    return out


def _zip_entries(data: bytes) -> dict[str, tuple[int, int]] | None:
    """Stored (uncompressed) entries of a zip held in ``data`` (a torch ``.pt`` file is one):
    name -> (offset of its data, size); None when ``data`` is not a zip."""
    if not data.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            out = {}
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    continue
                local = data[info.header_offset : info.header_offset + 30]
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                out[info.filename] = (
                    info.header_offset + 30 + name_len + extra_len,
                    info.file_size,
                )
            return out
    except (zipfile.BadZipFile, struct.error, ValueError):
        return None


def _member_ops(old_data: bytes, new_data: bytes, old_at: int, new_at: int) -> list[Op] | None:
    """XOR spans for a file whose size changed but which is a zip in both versions (a re-saved
    torch model: its tensors are stored entries that keep their names and sizes): (offset in the
    new file, length, offset in the old archive) as ops; None when nothing matches."""
    old_entries, new_entries = _zip_entries(old_data), _zip_entries(new_data)
    if old_entries is None or new_entries is None:
        return None
    ops: list[Op] = []
    position = 0
    for name, (offset, size) in sorted(new_entries.items(), key=lambda e: e[1][0]):
        match = old_entries.get(name)
        if match is None or match[1] != size or size < MIN_XOR_BYTES or offset < position:
            continue
        if offset > position:
            ops.append(("raw", offset - position))
        ops.append(("xor", size, old_at + match[0]))
        position = offset + size
    if not ops:
        return None
    if len(new_data) > position:
        ops.append(("raw", len(new_data) - position))
    return ops


def plan(base: Path, target: Path) -> list[Op]:
    """The ops that make ``target``: raw spans, XOR against same-named, same-sized files, and
    XOR of the same-named, same-sized entries of a file that is a zip in both (torch ``.pt``)."""
    old = _members(base)
    ops: list[Op] = []
    position = 0
    size = target.stat().st_size
    with tarfile.open(target, "r:") as tar, open(base, "rb") as old_file:
        for member in tar:
            if not member.isfile():
                continue
            match = old.get(member.name)
            if match is None or member.size < MIN_XOR_BYTES:
                continue
            if match[1] == member.size:
                inner: list[Op] | None = [("xor", member.size, match[0])]
            else:
                reader = tar.extractfile(member)
                assert reader is not None
                old_file.seek(match[0])
                inner = _member_ops(old_file.read(match[1]), reader.read(), match[0], 0)
            if inner is None:
                continue
            if member.offset_data > position:
                ops.append(("raw", member.offset_data - position))
            ops.extend(inner)
            position = member.offset_data + member.size
    if size > position:
        ops.append(("raw", size - position))
    return ops


def worth_trying(base: Path, target: Path) -> bool:
    """Whether some large file of ``target`` can be sent as a XOR against ``base``."""
    try:
        return any(op[0] == "xor" for op in plan(base, target))
    except (tarfile.TarError, OSError):
        return False


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")


def _split(block: bytes) -> bytes:
    return b"".join(block[i::WORD] for i in range(WORD))


def _join(planes: bytes) -> bytes:
    n = len(planes)
    out = bytearray(n)
    start = 0
    for i in range(WORD):
        length = len(range(i, n, WORD))
        out[i::WORD] = planes[start : start + length]
        start += length
    return bytes(out)


def build(base: Path, target: Path, out: Path, *, level: int = LEVEL) -> None:
    """Write the patch turning ``base`` into ``target`` (blocking)."""
    import zstandard

    ops = plan(base, target)
    header = json.dumps(
        {"format": FORMAT, "size": target.stat().st_size, "ops": ops}, separators=(",", ":")
    ).encode()
    compressor = zstandard.ZstdCompressor(level=level)
    with open(base, "rb") as old, open(target, "rb") as new, open(out, "wb") as raw:
        raw.write(MAGIC)
        with compressor.stream_writer(raw, closefd=False) as z:
            z.write(struct.pack(">I", len(header)) + header)
            for op in ops:
                length = op[1]
                if op[0] == "raw":
                    _copy(new, z, length)
                    continue
                old.seek(op[2])  # type: ignore[misc]
                while length:
                    n = min(BLOCK, length)
                    z.write(_split(_xor(_read(new, n), _read(old, n))))
                    length -= n


def is_patch(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def apply(base: Path, patch: Path, out: Path) -> str:
    """Write ``out`` from ``base`` and the patch (blocking, streaming); its sha256 hex.
    PatchError when the patch is not one, or does not fit ``base``."""
    import zstandard

    sha = hashlib.sha256()
    try:
        with open(patch, "rb") as raw, open(base, "rb") as old, open(out, "wb") as new:
            if raw.read(len(MAGIC)) != MAGIC:
                raise PatchError(f"not a {FORMAT} patch")
            z = zstandard.ZstdDecompressor().stream_reader(raw)
            (length,) = struct.unpack(">I", _read(z, 4))
            header = json.loads(_read(z, length))
            if header.get("format") != FORMAT:
                raise PatchError(f"not a {FORMAT} patch: {header.get('format')!r}")
            written = 0
            for op in header["ops"]:
                kind, length = op[0], int(op[1])
                if kind == "raw":
                    while length:
                        chunk = _read(z, min(BLOCK, length))
                        new.write(chunk)
                        sha.update(chunk)
                        length -= len(chunk)
                        written += len(chunk)
                    continue
                if kind != "xor":
                    raise PatchError(f"unknown op {kind!r}")
                old.seek(int(op[2]))
                while length:
                    n = min(BLOCK, length)
                    chunk = _xor(_join(_read(z, n)), _read(old, n))
                    new.write(chunk)
                    sha.update(chunk)
                    length -= n
                    written += n
            if written != header["size"]:
                raise PatchError(f"the patch makes {written} bytes, not {header['size']}")
    except (zstandard.ZstdError, struct.error, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise PatchError(f"a damaged {FORMAT} patch: {exc}") from exc
    return sha.hexdigest()


def _read(f: IO[bytes], n: int) -> bytes:
    """Exactly ``n`` bytes (a stream may answer fewer per read); PatchError at a short end."""
    parts = []
    left = n
    while left:
        chunk = f.read(left)
        if not chunk:
            raise PatchError(f"the data ends {left} bytes short")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _copy(src: IO[bytes], dst: IO[bytes], length: int) -> None:
    while length:
        chunk = _read(src, min(BLOCK, length))
        dst.write(chunk)
        length -= len(chunk)
