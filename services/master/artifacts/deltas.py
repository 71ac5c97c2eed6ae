"""Binary patches between two stored artifacts, so an edge that has one version downloads only
what changed, in two formats: HDiffPatch through ``detools`` (algorithm match-blocks, lzma: best
when some bytes changed and the rest moved) and ``tar-xor-zstd`` (edge_common.deltas: each weight
file XOR its old version in byte planes, zstd: best after a fine-tune changed every float, and
applied streaming, in a few MiB). Each format is built for a pair when an edge first accepts
it; an edge is served the smallest of those it accepts (``formats``) and can apply: HDiffPatch
holds the old and the new archive in memory (about ``HDIFF_MEMORY_FACTOR`` times the archive), so
an edge that reports less available memory than that is never sent one.

A patch is computed once per (from, to) pair, in a thread, and cached beside the artifacts
(``<artifact_dir>/deltas/<from>-<to>.hdiff`` or ``.xorz``, written to a temporary file and
renamed); requests
for a pair being built wait for that one build. A patch that would not save enough
(MASTER_DELTA_MAX_RATIO of the full size; MASTER_DELTA_XOR_MAX_RATIO for tar-xor-zstd, which
applies in linear time) is remembered as such (``<patch>.none``) and not served: the
agent downloads the artifact. Artifacts are uncompressed tars (services.master.packages.archive),
so a change inside one file stays a change of those bytes.

The cache is bounded: a served patch is marked used (its mtime), and after every build the
entries unused for MASTER_DELTA_CACHE_MAX_AGE_S go, then the least recently used ones until the
folder holds at most MASTER_DELTA_CACHE_MAX_BYTES (the patch just built is kept). A pruned patch is
built again when an edge asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import detools
from fastapi import Depends
from prometheus_client import CollectorRegistry, Counter, Histogram

from edge_common import deltas as xor_deltas
from services.master.packages import ArtifactStore, parse_digest
from shared.deps import from_app_state

log = logging.getLogger("edge.master.deltas")

ALGORITHM = "match-blocks"
PATCH_TYPE = "hdiffpatch"
COMPRESSION = "lzma"
HDIFF = "hdiffpatch"
XOR = xor_deltas.FORMAT
FORMATS = (HDIFF, XOR)
SUFFIX = {HDIFF: ".hdiff", XOR: ".xorz"}
# Applying an HDiffPatch patch held 2.4 times the archive in memory (bench/updates/apply.py).
HDIFF_MEMORY_FACTOR = 2.5


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
    def __init__(
        self,
        store: ArtifactStore,
        traffic: UpdateTraffic,
        *,
        max_ratio: float = 0.5,
        xor_max_ratio: float = 0.8,
        max_bytes: int = 2 * 1024**3,
        max_age_s: float = 30 * 86400,
    ):
        self.store = store
        self.traffic = traffic
        self.max_ratio = {HDIFF: max_ratio, XOR: xor_max_ratio}
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.dir = store.root / "deltas"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._building: dict[tuple[str, str, str], asyncio.Task[Path | None]] = {}
        self.prune()

    def _paths(self, base: str, target: str, fmt: str) -> tuple[Path, Path]:
        stem = f"{parse_digest(base, 'from')}-{parse_digest(target, 'digest')}{SUFFIX[fmt]}"
        return self.dir / stem, self.dir / f"{stem}.none"

    def usable(self, target: str, formats: frozenset[str], memory: int | None) -> list[str]:
        """The formats worth offering an edge that applies ``formats`` with ``memory`` bytes."""
        usable = [fmt for fmt in FORMATS if fmt in formats]
        if memory is not None and memory < HDIFF_MEMORY_FACTOR * self.store.size(target):
            usable = [fmt for fmt in usable if fmt != HDIFF]  # it could not hold both archives
        return usable

    async def patch(
        self,
        base: str,
        target: str,
        *,
        formats: frozenset[str] = frozenset({HDIFF}),
        memory: int | None = None,
    ) -> Path | None:
        """The smallest patch from ``base`` to ``target`` in the formats an edge applies (and,
        with ``memory`` bytes available, can), each built on first use and cached; None when none
        would pay (or either artifact is not stored)."""
        if not (self.store.exists(base) and self.store.exists(target)):
            return None
        found = []
        for fmt in self.usable(target, formats, memory):
            path = await self._one(base, target, fmt)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    found.append((path.stat().st_size, path))
        if not found:
            return None
        chosen = min(found)[1]
        _touch(chosen)  # used: the last to be pruned
        return chosen

    async def _one(self, base: str, target: str, fmt: str) -> Path | None:
        patch, none = self._paths(base, target, fmt)
        if patch.is_file():
            return patch
        if none.exists():
            return None
        key = (base, target, fmt)
        task = self._building.get(key)
        if task is None:
            task = asyncio.create_task(self._build(base, target, fmt), name=f"delta {key}")
            self._building[key] = task
            task.add_done_callback(lambda _t: self._building.pop(key, None))
        # Shielded: a client hanging up must not cancel the build others wait for.
        return await asyncio.shield(task)

    async def _build(self, base: str, target: str, fmt: str) -> Path | None:
        started = time.perf_counter()
        result = await asyncio.to_thread(self._build_sync, base, target, fmt)
        self.traffic.build_seconds.observe(time.perf_counter() - started)
        return result

    def _build_sync(self, base: str, target: str, fmt: str) -> Path | None:
        patch, none = self._paths(base, target, fmt)
        old, new = self.store.path(base), self.store.path(target)
        if fmt == XOR and not xor_deltas.worth_trying(old, new):
            none.touch()  # no weight file kept its name and size: nothing to XOR
            return None
        fd, name = tempfile.mkstemp(dir=self.store.tmp_dir, prefix="delta-")
        os.close(fd)
        tmp = Path(name)
        started = time.perf_counter()
        try:
            (build_patch if fmt == HDIFF else xor_deltas.build)(old, new, tmp)
            size, full = tmp.stat().st_size, self.store.size(target)
            log.info(
                "%s patch %s -> %s: %d bytes of %d (%.1f%%) in %.2fs",
                fmt,
                base[:19],
                target[:19],
                size,
                full,
                100 * size / max(full, 1),
                time.perf_counter() - started,
            )
            if size > self.max_ratio[fmt] * full:
                none.touch()
                return None
            os.replace(tmp, patch)
            return patch
        finally:
            tmp.unlink(missing_ok=True)
            self.prune(keep=patch)

    def prune(self, keep: Path | None = None) -> int:
        """Remove the entries unused for ``max_age_s``, then the least recently used ones until
        the rest fits ``max_bytes`` (``keep`` stays); the bytes freed (blocking)."""
        entries = []
        for path in self.dir.iterdir():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # removed meanwhile by another build's pruning
            entries.append((st.st_mtime, st.st_size, path))
        entries.sort()  # oldest first
        horizon = time.time() - self.max_age_s
        total = sum(size for _, size, _ in entries)
        freed = 0
        for mtime, size, path in entries:
            if path == keep:
                continue
            if mtime >= horizon and total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            freed += size
        if freed:
            log.info("delta cache pruned: %d bytes freed, %d bytes kept", freed, total)
        return freed

    async def aclose(self) -> None:
        """Cancel builds under way (their temporary files go with them)."""
        tasks = list(self._building.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _touch(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


DeltaCacheDep = Annotated[DeltaCache, Depends(from_app_state("deltas", DeltaCache))]
