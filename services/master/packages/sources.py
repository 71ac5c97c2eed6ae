"""Readers over what an operator hands in: a zip, a tar.gz, or a folder already on disk.

Each source yields raw entries in its own order with a way to read a file's bytes while the
entry is current (a tar.gz is read as a stream, once per pass, never seeked). Nothing here
decides what is allowed: ``archive.py`` does, from the raw entries.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Protocol, cast

from shared.errors import Invalid, PayloadTooLarge

FILE, DIR, SYMLINK, HARDLINK, SPECIAL = "file", "dir", "symlink", "hardlink", "special"
# The zip compression methods Python's zipfile reads: stored, deflate, bzip2, lzma.
ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


@dataclass
class RawEntry:
    name: str  # as written in the archive
    kind: str  # FILE, DIR, SYMLINK, HARDLINK or SPECIAL
    size: int  # declared size (files), 0 otherwise
    mode: int  # permission bits
    link: str | None = None  # symlink/hardlink target when known without reading
    special: str = ""  # for SPECIAL: "device file", "fifo", "socket"


Opener = Callable[[], IO[bytes]]


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _CountingReader:
    """Counts decompressed bytes as tarfile pulls them and stops past a bound (gzip bombs
    hidden in headers or padding, not only in declared member sizes)."""

    def __init__(self, raw: _Readable, limit: int):
        self._raw = raw
        self._limit = limit
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        if self.count > self._limit:
            raise PayloadTooLarge(
                f"the archive unpacks to more than {self._limit} bytes "
                "(tar stream), over the unpacked-size limit",
                field="archive",
            )
        return data


def detect_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    raise Invalid(
        "the archive is neither a zip nor a tar.gz (gzip-compressed tar) file", field="archive"
    )


def iter_zip(path: Path) -> Iterator[tuple[RawEntry, Opener]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError) as exc:
        raise Invalid(f"the zip archive is corrupt: {exc}", field="archive") from None
    with zf:
        for info in zf.infolist():
            if info.flag_bits & 0x1:
                raise Invalid(
                    f"{info.filename!r} is encrypted; encrypted zip entries are not supported",
                    field="archive",
                )
            if info.compress_type not in ZIP_METHODS:
                raise Invalid(
                    f"{info.filename!r} uses zip compression method {info.compress_type}, "
                    f"which is not supported (use {', '.join(ZIP_METHODS.values())})",
                    field="archive",
                )
            unix = info.external_attr >> 16
            fmt = stat.S_IFMT(unix)
            if info.is_dir():
                kind = DIR
            elif fmt == stat.S_IFLNK:
                kind = SYMLINK
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
                kind = SPECIAL
            else:
                kind = FILE
            special = {
                stat.S_IFCHR: "device file",
                stat.S_IFBLK: "device file",
                stat.S_IFIFO: "fifo",
                stat.S_IFSOCK: "socket",
            }.get(fmt, "")
            entry = RawEntry(
                info.filename,
                kind,
                info.file_size if kind == FILE else 0,
                stat.S_IMODE(unix) or 0o644,
                special=special,
            )
            if kind == SYMLINK:
                # A zip stores a symlink's target as the entry's content.
                if info.file_size > 4096:
                    raise Invalid(
                        f"symlink {info.filename!r} has an implausible target", field="archive"
                    )
                try:
                    entry.link = zf.read(info).decode("utf-8", "replace")
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                    raise Invalid(
                        f"the zip archive is corrupt at {info.filename!r}: {exc}", field="archive"
                    ) from None
            yield entry, partial(_open_zip_member, zf, info)


def _open_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    """A member's content stream; a forged header (an offset past the end, an unknown version)
    is the archive's fault, named as such."""
    try:
        return zf.open(info)
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError) as exc:
        raise Invalid(
            f"the zip archive is corrupt at {info.filename!r}: {exc}", field="archive"
        ) from None


def iter_targz(path: Path, *, stream_limit: int) -> Iterator[tuple[RawEntry, Opener]]:
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            reader = _CountingReader(gz, stream_limit)
            # A stream read once: the reader needs only read(), not the file API tarfile names.
            with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r|") as tf:
                for ti in tf:
                    if ti.isreg():
                        kind = FILE
                    elif ti.isdir():
                        kind = DIR
                    elif ti.issym():
                        kind = SYMLINK
                    elif ti.islnk():
                        kind = HARDLINK
                    else:
                        kind = SPECIAL
                    special = (
                        "device file"
                        if (ti.ischr() or ti.isblk())
                        else "fifo"
                        if ti.isfifo()
                        else "special file"
                    )
                    entry = RawEntry(
                        ti.name,
                        kind,
                        ti.size if kind == FILE else 0,
                        ti.mode & 0o7777,
                        link=ti.linkname if kind in (SYMLINK, HARDLINK) else None,
                        special=special,
                    )
                    yield entry, partial(_open_tar_member, tf, ti)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise Invalid(f"the tar.gz archive is corrupt: {exc}", field="archive") from None


def _open_tar_member(tf: tarfile.TarFile, ti: tarfile.TarInfo) -> IO[bytes]:
    f = tf.extractfile(ti)
    if f is None:  # not a regular file: scan() reads only files
        raise Invalid(f"{ti.name!r} has no content to read", field="archive")
    return f


def _open_file(path: str) -> IO[bytes]:
    return open(path, "rb")


def iter_directory(root: Path) -> Iterator[tuple[RawEntry, Opener]]:
    """A package folder already on disk (the field's ``/upload_edgeAI`` with names only)."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        names = sorted(filenames) + [
            d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
        ]
        if rel_dir != ".":
            st = os.lstat(dirpath)
            yield (
                RawEntry(rel_dir.replace(os.sep, "/") + "/", DIR, 0, stat.S_IMODE(st.st_mode)),
                _no_content,
            )
        for name in names:
            full = os.path.join(dirpath, name)
            rel = (name if rel_dir == "." else f"{rel_dir}/{name}").replace(os.sep, "/")
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                yield RawEntry(rel, SYMLINK, 0, mode, link=os.readlink(full)), _no_content
            elif stat.S_ISREG(st.st_mode):
                yield RawEntry(rel, FILE, st.st_size, mode), partial(_open_file, full)
            else:
                kind = (
                    "device file"
                    if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode))
                    else "fifo"
                    if stat.S_ISFIFO(st.st_mode)
                    else "socket"
                )
                yield RawEntry(rel, SPECIAL, 0, mode, special=kind), _no_content
        # Symlinked directories were listed as entries above; do not descend into them.
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def _no_content() -> IO[bytes]:
    raise RuntimeError("entry has no content")
