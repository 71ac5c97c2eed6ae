"""AI packages: manifest, archive validation, content-addressed artifact store.

The async entry points the master service calls (blocking file work runs in a thread):

- ``await ingest_package(path, store, limits=..., expected={"filename": .., ...})``
  validates a zip / tar.gz file or a package folder and stores its normalised artifact;
- ``await extract_artifact(store, digest, dest)`` unpacks a stored artifact (for a Docker build).
"""

from __future__ import annotations

import asyncio
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path

from .archive import DEFAULT_LIMITS, ArchiveLimits, IngestedPackage, ingest_sync
from .manifest import MANIFEST_NAMES, PackageManifest, Resources, parse_manifest
from .store import ArtifactStore, StoredArtifact, parse_digest
from .wheels import with_wheel_platforms

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
    "with_wheel_platforms",
]


async def ingest_package(
    source: str | os.PathLike,
    store: ArtifactStore,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    expected: Mapping[str, str | None] | None = None,
) -> IngestedPackage:
    """Validate then store a package; raises shared.errors.Invalid / PayloadTooLarge (nothing
    stored)."""
    return await asyncio.to_thread(ingest_sync, source, store, limits=limits, expected=expected)


def _extract(store: ArtifactStore, digest: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with store.open(digest) as f, tarfile.open(fileobj=f, mode="r:*") as tf:
        # The artifact was validated when stored; the "data" filter still refuses anything
        # escaping dest, should the store's content ever be tampered with.
        tf.extractall(dest, filter="data")


async def extract_artifact(store: ArtifactStore, digest: str, dest: str | os.PathLike) -> None:
    await asyncio.to_thread(_extract, store, digest, Path(dest))
