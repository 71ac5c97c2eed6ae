"""Validating an AI package and turning it into its stored, normalised form.

Three steps, and nothing reaches the artifact store unless all pass:

1. scan: every entry's path and type is checked (no absolute paths, no ``..``, no device files,
   no hard links, symlinks must resolve inside the package), declared sizes and the file count
   are held against the limits, and the manifest is read and validated;
2. extract into a private staging folder under the store's ``tmp/``, counting the bytes that
   actually come out (a zip can lie about its sizes);
3. pack the staging folder into the normalised artifact: an uncompressed tar with the package's
   files at its root, sorted, owner 0:0, fixed mtime, modes 0644/0755 - the same package content
   always gives the same bytes, hence the same digest. Uncompressed, so that a change inside one
   file (retrained weights) changes only those bytes and a binary patch between two versions stays
   small (services.master.artifacts.deltas); compression would scramble everything after it.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import Invalid, PayloadTooLarge

from .manifest import MANIFEST_NAMES, PackageManifest, parse_manifest
from .sources import (
    DIR,
    FILE,
    HARDLINK,
    SPECIAL,
    SYMLINK,
    Opener,
    RawEntry,
    detect_format,
    iter_directory,
    iter_targz,
    iter_zip,
)
from .store import ArtifactStore, StoredArtifact
from .wheels import with_wheel_platforms

FIXED_MTIME = 315532800  # 1980-01-01, the zip epoch: stable digests, no 1970 surprises
COPY_CHUNK = 1 << 20
_IGNORED_TOP = ("__MACOSX",)  # macOS Finder zips add this folder beside the real content
# What a damaged or forged archive raises while its content is read.
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError, gzip.BadGzipFile)
# What an entry the library or the OS cannot handle raises (e.g. zip compression method 99):
# answered as that entry's fault, never as a server error.
_UNREADABLE = (NotImplementedError, ValueError)
MAX_COMPONENT_BYTES = 255  # a file name on Linux file systems
MAX_PATH_BYTES = 1024  # well under PATH_MAX (4,096) once the staging folder is put in front
MAX_LINK_BYTES = 1024


@dataclass(frozen=True)
class ArchiveLimits:
    max_archive_bytes: int = 512 * 1024 * 1024
    max_unpacked_bytes: int = 2 * 1024 * 1024 * 1024
    max_files: int = 10_000
    max_manifest_bytes: int = 256 * 1024


DEFAULT_LIMITS = ArchiveLimits()


@dataclass
class Member:
    path: str  # normalised, relative to the package root
    kind: str
    size: int
    mode: int
    link: str | None
    source: str  # the name inside the archive
    opener: Opener | None = None


@dataclass
class ScannedPackage:
    format: str  # "zip", "tar.gz" or "directory"
    prefix: str  # "" or "<top folder>/" stripped from every name
    manifest: PackageManifest
    manifest_name: str
    members: dict[str, Member] = field(default_factory=dict)
    declared_size: int = 0


@dataclass(frozen=True)
class IngestedPackage:
    digest: str  # sha256:<hex> of the normalised artifact
    size: int  # bytes of the normalised artifact
    created: bool  # False when the same package was stored before
    manifest: PackageManifest
    unpacked_size: int
    file_count: int
    source_format: str


# --- paths ------------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    """Check one archive name and return it normalised (no ./, no //, no trailing /)."""
    if not name or "\x00" in name:
        raise Invalid(
            f"an archive entry has an empty or NUL-containing name ({name!r})", field="archive"
        )
    if "\\" in name:
        raise Invalid(f"{name!r} uses backslashes; archive paths must use '/'", field="archive")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise Invalid(
            f"{name!r} is an absolute path; every path must be relative to the package root",
            field="archive",
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Invalid(
            f"{name!r} contains '..'; paths must stay inside the package", field="archive"
        )
    clean = "/".join(parts)
    if len(clean.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise Invalid(
            f"{_short(name)} is {len(clean.encode('utf-8', 'surrogateescape'))} bytes long; "
            f"archive paths may be at most {MAX_PATH_BYTES} bytes",
            field="archive",
        )
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise Invalid(
                f"{name!r} has a path component over {MAX_COMPONENT_BYTES} bytes", field="archive"
            )
    return clean


def _short(name: str, keep: int = 80) -> str:
    """An entry's name for a message, cut short when it is very long."""
    return repr(name) if len(name) <= keep else f"{name[:keep]!r}... ({len(name)} characters)"


def _check_link(source: str, target: str) -> None:
    """A symlink target the file system can hold: no NUL, not absurdly long."""
    if "\x00" in target:
        raise Invalid(f"symlink {source!r} has a NUL character in its target", field="archive")
    if len(target.encode("utf-8", "surrogateescape")) > MAX_LINK_BYTES:
        raise Invalid(
            f"symlink {source!r} has a target over {MAX_LINK_BYTES} bytes", field="archive"
        )


def _resolves_inside(path: str, target: str, links: Mapping[str, str]) -> bool:
    """Does the symlink at ``path`` pointing to ``target`` stay inside the package root,
    following other symlinks of the package on the way (chains like a -> b/.. are caught)?"""
    if target.startswith("/"):
        return False
    stack = path.split("/")[:-1]
    todo = [p for p in target.split("/") if p not in ("", ".")]
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if not stack:
                return False
            stack.pop()
            continue
        stack.append(part)
        here = "/".join(stack)
        if here in links:
            hops += 1
            if hops > 40:
                return False
            nxt = links[here]
            if nxt.startswith("/"):
                return False
            stack.pop()
            todo = [p for p in nxt.split("/") if p not in ("", ".")] + todo
    return True


# --- step 1: scan -----------------------------------------------------------------------


def _iter_source(path: Path, fmt: str, limits: ArchiveLimits) -> Iterator[tuple[RawEntry, Opener]]:
    if fmt == "zip":
        return iter_zip(path)
    if fmt == "tar.gz":
        # Every tar member costs a 512-byte header (two or three with a long-name PAX header)
        # and up to 511 bytes of padding on top of its content.
        return iter_targz(
            path, stream_limit=limits.max_unpacked_bytes + 2048 * (limits.max_files + 16)
        )
    return iter_directory(path)


def _find_prefix(names: list[str]) -> str:
    if any(n in MANIFEST_NAMES for n in names):
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        top = tops.pop()
        if any(n in (f"{top}/{m}" for m in MANIFEST_NAMES) for n in names):
            return f"{top}/"
    raise Invalid(
        "no manifest: the package needs aipackage.yaml (or aipackage.toml) at its root "
        "or inside a single top folder",
        field="manifest",
    )


def scan(
    path: Path, fmt: str, limits: ArchiveLimits, expected: Mapping[str, str | None] | None = None
) -> ScannedPackage:
    """Step 1: every entry checked, the manifest read and validated, the members laid out."""
    listing = _list_entries(path, fmt, limits)
    prefix = _find_prefix([e.name for e in listing.entries])
    manifest_name = _manifest_name(prefix, listing.entries, listing.manifests)
    manifest = parse_manifest(listing.manifests[manifest_name], manifest_name.rsplit("/", 1)[-1])
    check_expected(manifest, expected)
    members = _members(listing.entries, prefix)
    _check_layout(members)
    _check_referenced(manifest, members)
    manifest = with_wheel_platforms(manifest, members)
    return ScannedPackage(fmt, prefix, manifest, manifest_name, members, listing.declared)


@dataclass
class _Listing:
    """The entries of a source as checked one by one, and the manifest candidates' bytes."""

    entries: list[RawEntry] = field(default_factory=list)
    manifests: dict[str, bytes] = field(default_factory=dict)
    declared: int = 0  # the sum of the sizes the entries declare


def _list_entries(path: Path, fmt: str, limits: ArchiveLimits) -> _Listing:
    """Every entry's name, kind and declared size checked against the rules and the limits;
    manifest candidates read on the way (a tar stream cannot come back for them)."""
    listing = _Listing()
    seen: set[str] = set()
    for raw, opener in _iter_source(path, fmt, limits):
        name = _clean_name(raw.name)
        if not name or name.split("/", 1)[0] in _IGNORED_TOP:
            continue
        _check_entry(raw, name, seen)
        seen.add(name)
        if len(listing.entries) + 1 > limits.max_files:
            raise PayloadTooLarge(
                f"the archive holds more than {limits.max_files} entries, "
                "over the file-count limit",
                field="archive",
            )
        listing.declared += raw.size
        if listing.declared > limits.max_unpacked_bytes:
            raise PayloadTooLarge(
                f"the archive declares more than {limits.max_unpacked_bytes} "
                "bytes unpacked, over the unpacked-size limit",
                field="archive",
            )
        raw.name = name
        listing.entries.append(raw)
        if _is_manifest_candidate(raw, name):
            listing.manifests[name] = _read_manifest(raw, opener, limits)
    return listing


def _check_entry(raw: RawEntry, name: str, seen: set[str]) -> None:
    """Only regular files, folders and symlinks that stay sane, each name once."""
    if raw.kind == SPECIAL:
        raise Invalid(
            f"{raw.name!r} is a {raw.special}; only regular files, folders and symlinks are "
            "allowed",
            field="archive",
        )
    if raw.kind == HARDLINK:
        raise Invalid(
            f"{raw.name!r} is a hard link (to {raw.link!r}); hard links are not allowed",
            field="archive",
        )
    if name in seen and raw.kind != DIR:
        raise Invalid(f"{raw.name!r} appears twice in the archive", field="archive")
    if raw.kind == SYMLINK:
        _check_link(raw.name, raw.link or "")


def _is_manifest_candidate(raw: RawEntry, name: str) -> bool:
    """A manifest file at the root or in a single top folder."""
    return raw.kind == FILE and name.rsplit("/", 1)[-1] in MANIFEST_NAMES and name.count("/") <= 1


def _read_manifest(raw: RawEntry, opener: Opener, limits: ArchiveLimits) -> bytes:
    if raw.size > limits.max_manifest_bytes:
        raise Invalid(
            f"{raw.name} is larger than {limits.max_manifest_bytes} bytes", field="manifest"
        )
    try:
        with opener() as f:
            return f.read(limits.max_manifest_bytes + 1)
    except _CORRUPT as exc:
        raise Invalid(f"the archive is corrupt at {raw.name!r}: {exc}", field="archive") from None
    except _UNREADABLE as exc:
        raise _unreadable(raw.name, exc) from None


def _members(entries: list[RawEntry], prefix: str) -> dict[str, Member]:
    """The entries by their path in the package (the top folder, if any, stripped)."""
    members: dict[str, Member] = {}
    for e in entries:
        rel = e.name[len(prefix) :] if prefix else e.name
        if not rel:
            continue  # the top folder itself
        if rel in members and e.kind == DIR and members[rel].kind == DIR:
            continue
        members[rel] = Member(rel, e.kind, e.size, e.mode, e.link, e.name)
    return members


def _check_layout(members: Mapping[str, Member]) -> None:
    """Symlinks resolve inside the package; nothing is written through a link or under a file."""
    links = {p: m.link or "" for p, m in members.items() if m.kind == SYMLINK}
    for p, m in members.items():
        if m.kind == SYMLINK and not _resolves_inside(p, m.link or "", links):
            raise Invalid(
                f"symlink {m.source!r} points outside the package ({m.link!r})", field="archive"
            )
        parents = p.split("/")[:-1]
        for i in range(1, len(parents) + 1):
            parent = "/".join(parents[:i])
            if parent in links:
                raise Invalid(
                    f"{m.source!r} lies under the symlink {parent!r}; files must not be written "
                    "through links",
                    field="archive",
                )
            if parent in members and members[parent].kind == FILE:
                raise Invalid(
                    f"{m.source!r} lies under {parent!r}, which is a file", field="archive"
                )


def _manifest_name(
    prefix: str, entries: list[RawEntry], manifest_bytes: Mapping[str, bytes]
) -> str:
    """The manifest that was read; one that is a symlink, a folder ... is refused by name.
    (A bare ``next()`` here raised StopIteration, which hangs ``asyncio.to_thread``.)"""
    for m in MANIFEST_NAMES:
        if f"{prefix}{m}" in manifest_bytes:
            return f"{prefix}{m}"
    kinds = {e.name: e.kind for e in entries}
    for m in MANIFEST_NAMES:
        kind = kinds.get(f"{prefix}{m}")
        if kind is not None:
            what = {SYMLINK: "a symlink", DIR: "a folder"}.get(kind, f"a {kind}")
            raise Invalid(f"{m} must be a regular file, not {what}", field="manifest")
    raise Invalid(f"no readable manifest under {prefix or 'the package root'}", field="manifest")


def _unreadable(source: str, exc: BaseException) -> Invalid:
    """An entry the archive library or the file system cannot handle, named as such."""
    return Invalid(f"{source!r} cannot be read: {exc or type(exc).__name__}", field="archive")


def check_expected(manifest: PackageManifest, expected: Mapping[str, str | None] | None) -> None:
    """The upload request's filename/version/ai_class, when given, must be the manifest's."""
    for key, value in (expected or {}).items():
        if value is None:
            continue
        have = getattr(manifest, key)
        if str(value) != have:
            raise Invalid(
                f"{key} {value!r} in the request does not match {key} {have!r} "
                "in the package manifest",
                field=key,
            )


def _check_referenced(manifest: PackageManifest, members: Mapping[str, Member]) -> None:
    def is_file(p: str) -> bool:
        m = members.get(p)
        return m is not None and m.kind in (FILE, SYMLINK)

    if manifest.dockerfile and not is_file(manifest.dockerfile):
        raise Invalid(
            f"dockerfile {manifest.dockerfile!r} named in the manifest is not in the package",
            field="manifest.dockerfile",
        )
    if manifest.wheelhouse and not any(
        p.startswith(f"{manifest.wheelhouse}/") and p.endswith(".whl") for p in members
    ):
        raise Invalid(
            f"wheelhouse {manifest.wheelhouse!r} named in the manifest holds no wheels "
            "(edgectl ai pack downloads them)",
            field="manifest.wheelhouse",
        )
    for i, model in enumerate(manifest.models):
        if not is_file(model):
            raise Invalid(
                f"model file {model!r} named in the manifest is not in the package",
                field=f"manifest.models.{i}",
            )
    detector = manifest.detector
    if detector is not None:
        if not is_file(detector.model):
            raise Invalid(
                f"detector model {detector.model!r} is not in the package",
                field="manifest.detector.model",
            )
        labels = detector.labels
        if isinstance(labels, str) and labels != "coco" and not is_file(labels):
            raise Invalid(
                f"labels file {labels!r} is not in the package", field="manifest.detector.labels"
            )


def check_detector(manifest: PackageManifest, root: Path) -> None:
    """An ONNX detector is loaded (CPU) and its inputs and outputs held against the declared
    layout and input size; the labels, when listed, against its classes. A ``.pt`` is only
    required to be in the package (loading it would need torch in the master)."""
    detector = manifest.detector
    if detector is None or detector.resolved_backend != "onnxruntime":
        return
    from detectors import DetectorError
    from detectors.layouts import check_onnx_model

    try:
        info = check_onnx_model(
            str(root / detector.model), detector.layout or "yolov8", detector.imgsz
        )
    except DetectorError as exc:
        raise Invalid(
            f"detector {detector.model}: {exc.message}", field=f"manifest.detector.{exc.field}"
        ) from None
    if isinstance(detector.labels, list) and info.classes and len(detector.labels) != info.classes:
        raise Invalid(
            f"{len(detector.labels)} labels listed, the model has {info.classes} classes",
            field="manifest.detector.labels",
        )


# --- step 2: extract with byte counting -------------------------------------------------


def extract(path: Path, scanned: ScannedPackage, limits: ArchiveLimits, dest: Path) -> int:
    """Unpack the scanned entries into ``dest``; returns the bytes written."""
    by_source = {m.source: m for m in scanned.members.values()}
    total = 0
    for raw, opener in _iter_source(path, scanned.format, limits):
        name = _clean_name(raw.name)
        m = by_source.get(name)
        if m is None:
            continue
        target = dest / m.path
        if m.kind == DIR:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if m.kind == SYMLINK:
            os.symlink(m.link or "", target)
            continue
        written = 0
        try:
            with opener() as src, open(target, "wb") as out:
                while block := src.read(COPY_CHUNK):
                    written += len(block)
                    total += len(block)
                    if written > m.size:
                        raise Invalid(
                            f"{m.source!r} holds more bytes than its header declares; "
                            "the archive is corrupt",
                            field="archive",
                        )
                    if total > limits.max_unpacked_bytes:
                        raise PayloadTooLarge(
                            f"the archive unpacks to more than {limits.max_unpacked_bytes} "
                            "bytes, over the unpacked-size limit",
                            field="archive",
                        )
                    out.write(block)
        except _CORRUPT as exc:
            raise Invalid(
                f"the archive is corrupt at {m.source!r}: {exc}", field="archive"
            ) from None
        except _UNREADABLE as exc:
            raise _unreadable(m.source, exc) from None
        except OSError as exc:
            if exc.errno in (errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL):
                raise Invalid(
                    f"{m.source!r} cannot be written: {exc.strerror}", field="archive"
                ) from None
            raise
        os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
    return total


# --- step 3: normalised artifact --------------------------------------------------------


def _tarinfo(
    name: str, kind: str, size: int = 0, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = FIXED_MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    if kind == DIR:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    elif kind == SYMLINK:
        ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o777, link
    else:
        ti.type, ti.mode, ti.size = tarfile.REGTYPE, mode, size
    return ti


def write_normalised_tar(
    root: Path, out, *, prefix: str = "", parents: tuple[str, ...] = ()
) -> None:
    """Pack ``root`` as a deterministic, uncompressed tar into the binary stream ``out``.
    ``prefix`` (e.g. ``opt/edge-ai/monitoring/``) is put before every name; ``parents`` are
    folder entries written first (an image layer needs its parent folders)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for p in parents:
            tf.addfile(_tarinfo(p, DIR))
        if prefix:
            tf.addfile(_tarinfo(prefix.rstrip("/"), DIR))
        for rel in _walk_sorted(root):
            full = root / rel
            st = os.lstat(full)
            name = prefix + rel
            if stat.S_ISLNK(st.st_mode):
                tf.addfile(_tarinfo(name, SYMLINK, link=os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                tf.addfile(_tarinfo(name, DIR))
            else:
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                with open(full, "rb") as f:
                    tf.addfile(_tarinfo(name, FILE, st.st_size, mode), f)


def _walk_sorted(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            out.append(d if rel_dir == "." else f"{rel_dir}/{d}")
        for f in filenames:
            out.append(f if rel_dir == "." else f"{rel_dir}/{f}")
    return sorted(p.replace(os.sep, "/") for p in out)


# --- the whole pipeline -----------------------------------------------------------------


def ingest_sync(
    source: str | os.PathLike,
    store: ArtifactStore,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    expected: Mapping[str, str | None] | None = None,
) -> IngestedPackage:
    """Validate an archive file (zip/tar.gz) or a package folder and store its normalised form.
    Raises Invalid / PayloadTooLarge with a message naming the problem; stores nothing then."""
    path = Path(source)
    if path.is_dir():
        fmt = "directory"
    else:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise Invalid(f"the package {str(path)!r} does not exist", field="archive") from None
        if size > limits.max_archive_bytes:
            raise PayloadTooLarge(
                f"the archive is {size} bytes, "
                f"over the archive-size limit of {limits.max_archive_bytes} bytes",
                field="archive",
            )
        fmt = detect_format(path)
    scanned = scan(path, fmt, limits, expected)
    staging = Path(tempfile.mkdtemp(dir=store.tmp_dir, prefix="stage-"))
    try:
        if fmt == "directory":
            # Copy what was scanned so a folder changing under us cannot slip anything in.
            unpacked = _copy_directory(path, scanned, limits, staging)
        else:
            unpacked = extract(path, scanned, limits, staging)
        check_detector(scanned.manifest, staging)
        with store.writer() as w:
            write_normalised_tar(staging, w)
            stored: StoredArtifact = w.commit()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = sum(1 for m in scanned.members.values() if m.kind != DIR)
    return IngestedPackage(
        stored.digest, stored.size, stored.created, scanned.manifest, unpacked, files, fmt
    )


def _copy_directory(root: Path, scanned: ScannedPackage, limits: ArchiveLimits, dest: Path) -> int:
    total = 0
    for m in sorted(scanned.members.values(), key=lambda m: m.path):
        target = dest / m.path
        if m.kind == DIR:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if m.kind == SYMLINK:
            os.symlink(m.link or "", target)
            continue
        src_path = root / m.source
        if os.path.islink(src_path) or not src_path.is_file():
            raise Invalid(f"{m.source!r} changed while the package was read", field="archive")
        with open(src_path, "rb") as src, open(target, "wb") as out:
            while block := src.read(COPY_CHUNK):
                total += len(block)
                if total > limits.max_unpacked_bytes:
                    raise PayloadTooLarge(
                        f"the package is more than {limits.max_unpacked_bytes} bytes, "
                        "over the unpacked-size limit",
                        field="archive",
                    )
                out.write(block)
        os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
    return total
