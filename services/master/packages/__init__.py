"""AI packages: manifest, archive validation, content-addressed artifact store.

The async entry points the master service calls (blocking file work runs in a thread):

- ``await ingest_package(path, store, limits=..., expected={"filename": .., "version": .., "ai_class": ..})``
  validates a zip / tar.gz file or a package folder and stores its normalised artifact;
- ``await extract_artifact(store, digest, dest)`` unpacks a stored artifact (for a Docker build);
- ``async with spool_upload(request.stream(), store, max_bytes) as path:`` writes an upload body
  to a temp file (never whole in memory), refusing it past ``max_bytes``, removed afterwards.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import tarfile
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from pathlib import Path

from .archive import ArchiveLimits, IngestedPackage, ingest_sync
from .manifest import MANIFEST_NAMES, PackageManifest, Resources, parse_manifest
from .store import ArtifactStore, StoredArtifact, parse_digest, sha256_file
from shared.errors import PayloadTooLarge

__all__ = [
    "MANIFEST_NAMES",
    "ArchiveLimits",
    "ArtifactStore",
    "IngestedPackage",
    "PackageManifest",
    "Resources",
    "StoredArtifact",
    "extract_artifact",
    "ingest_package",
    "parse_digest",
    "parse_manifest",
    "sha256_file",
    "spool_upload",
]


async def ingest_package(
    source: str | os.PathLike,
    store: ArtifactStore,
    *,
    limits: ArchiveLimits = ArchiveLimits(),
    expected: Mapping[str, str | None] | None = None,
) -> IngestedPackage:
    """Validate then store a package; raises shared.errors.Invalid / PayloadTooLarge (nothing stored)."""
    return await asyncio.to_thread(ingest_sync, source, store, limits=limits, expected=expected)


def _extract(store: ArtifactStore, digest: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with store.open(digest) as f, tarfile.open(fileobj=f, mode="r:gz") as tf:
        # The artifact was validated when stored; the "data" filter still refuses anything
        # escaping dest, should the store's content ever be tampered with.
        tf.extractall(dest, filter="data")


async def extract_artifact(store: ArtifactStore, digest: str, dest: str | os.PathLike) -> None:
    await asyncio.to_thread(_extract, store, digest, Path(dest))


@contextlib.asynccontextmanager
async def spool_upload(chunks: AsyncIterable[bytes], store: ArtifactStore, max_bytes: int) -> AsyncIterator[os.PathLike]:
    """Stream an upload body into a temp file under the store's tmp/ (same disk as the store)."""
    fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"the upload is more than {max_bytes} bytes, over the archive-size limit", field="archive"
                    )
                f.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)
