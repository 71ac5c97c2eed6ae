"""Content-addressed artifact store on disk.

Layout under the root directory (one filesystem, so renames are atomic)::

    <root>/sha256/<hex>     one file per distinct content, named by its sha256
    <root>/tmp/             files being written; renamed into sha256/ once complete

A reader never sees a half-written artifact: bytes go to a temp file, are fsynced, and only
then renamed to their digest name. The same bytes written twice end as one file.
Deleting is the caller's decision (it knows what still references a digest).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.errors import Invalid, NotFound

CHUNK = 1 << 20
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")  # fullmatch only: "$" accepts a trailing newline


def parse_digest(digest: str, field: str = "digest") -> str:
    """``sha256:<64 hex>`` -> the hex part; anything else is Invalid."""
    m = _DIGEST.fullmatch(digest or "")
    if not m:
        raise Invalid(
            f"{digest!r} is not a digest of the form sha256:<64 lowercase hex digits>", field=field
        )
    return m.group(1)


@dataclass(frozen=True)
class StoredArtifact:
    digest: str  # sha256:<hex>
    size: int
    created: bool  # False when the same bytes were already stored


class ArtifactWriter:
    """A temp file that hashes what is written; ``commit()`` moves it to its digest name."""

    def __init__(self, store: ArtifactStore):
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="w-")
        self.tmp_path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.result: StoredArtifact | None = None

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def commit(self) -> StoredArtifact:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        hexd = self._hash.hexdigest()
        final = self._store.sha_dir / hexd
        if final.exists():
            # Same bytes already stored: keep the existing file (readers may have it open).
            self.tmp_path.unlink(missing_ok=True)
            created = False
        else:
            os.chmod(self.tmp_path, 0o644)
            os.replace(self.tmp_path, final)
            _fsync_dir(self._store.sha_dir)
            created = True
        self.result = StoredArtifact(f"sha256:{hexd}", self.size, created)
        return self.result

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.sha_dir = self.root / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.sha_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    # --- reading -------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        return self.sha_dir / parse_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} is not in the store", field="digest") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} is not in the store", field="digest") from None

    def digests(self) -> list[str]:
        names = (f"sha256:{p.name}" for p in self.sha_dir.iterdir())
        return sorted(n for n in names if _DIGEST.fullmatch(n))

    # --- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self) -> Iterator[ArtifactWriter]:
        """Write an artifact; it is stored only if the block ends without error and calls
        commit()."""
        w = ArtifactWriter(self)
        try:
            yield w
        finally:
            if w.result is None:
                w.abort()

    def delete(self, digest: str) -> bool:
        """Remove an artifact; False when it was not there. The caller checks references first."""
        try:
            self.path(digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def clean_tmp(self) -> int:
        """Remove leftovers of writes interrupted by a crash (call at startup)."""
        removed = 0
        for p in self.tmp_dir.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed += 1
        return removed
