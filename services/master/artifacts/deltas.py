"""Binary patches between two stored artifacts, so an edge that has one version downloads only
what changed (HDiffPatch through ``detools``, algorithm match-blocks, lzma).

A patch is computed once per (from, to) pair, in a thread, and cached beside the artifacts
(``<artifact_dir>/deltas/<from>-<to>.hdiff``, written to a temporary file and renamed); requests
for a pair being built wait for that one build. A patch that would not save enough
(MASTER_DELTA_MAX_RATIO of the full size) is remembered as such (``.none``) and not served: the
agent downloads the artifact. Artifacts are uncompressed tars (services.master.packages.archive),
so a change inside one file stays a change of those bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

import detools
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.master.packages import ArtifactStore, parse_digest

log = logging.getLogger("edge.master.deltas")

ALGORITHM = "match-blocks"
PATCH_TYPE = "hdiffpatch"
COMPRESSION = "lzma"


def build_patch(base: Path, target: Path, out: Path) -> None:
    """Write the patch turning ``base`` into ``target`` (blocking)."""
    with open(base, "rb") as f_from, open(target, "rb") as f_to, open(out, "wb") as f_patch:
        detools.create_patch(
            f_from,
            f_to,
            f_patch,
            compression=COMPRESSION,
            patch_type=PATCH_TYPE,
            algorithm=ALGORITHM,
        )


class UpdateTraffic:
    """The update metrics the master measures itself: bytes sent per update, full vs delta,
    and how long patches take to build."""

    def __init__(self, registry: CollectorRegistry | None):
        self.bytes = Counter(
            "master_update_bytes_total",
            "Bytes of package updates sent to edges, by kind (full artifact or delta)",
            ["kind"],
            registry=registry,
        )
        self.updates = Counter(
            "master_update_downloads_total",
            "Package downloads served to edges, by kind (full artifact or delta)",
            ["kind"],
            registry=registry,
        )
        self.build_seconds = Histogram(
            "master_delta_build_seconds",
            "Time to compute one binary patch (once per pair of versions)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )

    def sent(self, kind: str, size: int) -> None:
        self.bytes.labels(kind).inc(size)
        self.updates.labels(kind).inc()


class DeltaCache:
    def __init__(self, store: ArtifactStore, traffic: UpdateTraffic, *, max_ratio: float = 0.9):
        self.store = store
        self.traffic = traffic
        self.max_ratio = max_ratio
        self.dir = store.root / "deltas"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._building: dict[tuple[str, str], asyncio.Task[Path | None]] = {}

    def _paths(self, base: str, target: str) -> tuple[Path, Path]:
        stem = f"{parse_digest(base, 'from')}-{parse_digest(target, 'digest')}"
        return self.dir / f"{stem}.hdiff", self.dir / f"{stem}.none"

    async def patch(self, base: str, target: str) -> Path | None:
        """The cached patch from ``base`` to ``target``, built on first use; None when a patch
        would not pay (or either artifact is not stored)."""
        patch, none = self._paths(base, target)
        if patch.is_file():
            return patch
        if none.exists() or not (self.store.exists(base) and self.store.exists(target)):
            return None
        key = (base, target)
        task = self._building.get(key)
        if task is None:
            task = asyncio.create_task(self._build(base, target), name=f"delta {key}")
            self._building[key] = task
            task.add_done_callback(lambda _t: self._building.pop(key, None))
        # Shielded: a client hanging up must not cancel the build others wait for.
        return await asyncio.shield(task)

    async def _build(self, base: str, target: str) -> Path | None:
        started = time.perf_counter()
        result = await asyncio.to_thread(self._build_sync, base, target)
        self.traffic.build_seconds.observe(time.perf_counter() - started)
        return result

    def _build_sync(self, base: str, target: str) -> Path | None:
        patch, none = self._paths(base, target)
        fd, name = tempfile.mkstemp(dir=self.store.tmp_dir, prefix="delta-")
        os.close(fd)
        tmp = Path(name)
        started = time.perf_counter()
        try:
            build_patch(self.store.path(base), self.store.path(target), tmp)
            size, full = tmp.stat().st_size, self.store.size(target)
            log.info(
                "patch %s -> %s: %d bytes of %d (%.1f%%) in %.2fs",
                base[:19],
                target[:19],
                size,
                full,
                100 * size / max(full, 1),
                time.perf_counter() - started,
            )
            if size > self.max_ratio * full:
                none.touch()
                return None
            os.replace(tmp, patch)
            return patch
        finally:
            tmp.unlink(missing_ok=True)

    async def aclose(self) -> None:
        """Cancel builds under way (their temporary files go with them)."""
        tasks = list(self._building.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
