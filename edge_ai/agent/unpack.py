"""Unpack a package archive (zip or tar.gz) into a directory, refusing anything that could escape
it.

Refused: absolute paths, ``..`` components, links (symbolic or hard) whose target leaves the root,
device files and fifos, more than ``max_files`` entries, more than ``max_bytes`` unpacked.
The archive is unpacked into a temporary sibling directory that is renamed into place at the end,
so a half-unpacked directory is never seen.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import uuid
import zipfile
from pathlib import Path


class UnsafePackage(Exception):
    """The archive is malformed or tries to write outside its directory."""


def _check_name(name: str) -> str:
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise UnsafePackage(f"absolute path in package: {name!r}")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePackage(f"'..' in package path: {name!r}")
    return "/".join(parts)


def _check_link(member_name: str, target: str, *, hard: bool) -> None:
    if target.startswith("/") or "\\" in target:
        raise UnsafePackage(f"link {member_name!r} points outside the package: {target!r}")
    base = "" if hard else posixpath.dirname(member_name)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafePackage(f"link {member_name!r} points outside the package: {target!r}")


def _limits(count: int, total: int, *, max_files: int, max_bytes: int) -> None:
    if count > max_files:
        raise UnsafePackage(f"package holds more than {max_files} files")
    if total > max_bytes:
        raise UnsafePackage(f"package unpacks to more than {max_bytes} bytes")


def _extract_tar(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        total = 0
        for m in members:
            name = _check_name(m.name)
            if m.issym() or m.islnk():
                _check_link(name, m.linkname, hard=m.islnk())
            elif not (m.isfile() or m.isdir()):
                raise UnsafePackage(f"special file in package: {m.name!r}")
            total += max(m.size, 0)
            _limits(len(members), total, max_files=max_files, max_bytes=max_bytes)
        # The checks above are ours; the 'data' filter is a second line of defence.
        tar.extractall(dest, filter="data")


def _extract_zip(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            name = _check_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(name, zf.read(info).decode(errors="replace"), hard=False)
            total += info.file_size
            _limits(len(infos), total, max_files=max_files, max_bytes=max_bytes)
        written = 0
        for info in infos:
            name = _check_name(info.filename)
            if not name:
                continue
            target = dest / name
            mode = info.external_attr >> 16
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode(), target)
                continue
            # Sizes in the zip directory can lie (zip bombs): count what is really written.
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:
                        raise UnsafePackage(f"package unpacks to more than {max_bytes} bytes")
                    out.write(chunk)
            if mode & 0o111:
                target.chmod(0o755)


def archive_kind(archive: Path) -> str:
    with open(archive, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise UnsafePackage("package is neither a zip nor a tar(.gz) archive")


def unpack(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> Path:
    """Unpack ``archive`` into ``dest`` (which must not exist yet); blocking, run it in a thread."""
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        try:
            if archive_kind(archive) == "zip":
                _extract_zip(archive, tmp, max_files=max_files, max_bytes=max_bytes)
            else:
                _extract_tar(archive, tmp, max_files=max_files, max_bytes=max_bytes)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise UnsafePackage(f"package archive is corrupt: {exc}") from exc
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
