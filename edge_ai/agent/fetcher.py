"""Getting package archives from the master, by digest, into a local content-addressed cache:
as a binary patch from an archive already cached when the master has one, else whole.

A whole archive is downloaded into ``.<hex>.partial`` beside the cache, kept when the link drops:
the next request asks only for the rest (``Range: bytes=<what it has>-``, with ``If-Range`` the
ETag the download started with, so an archive that is not the same any more comes whole and the
download starts over). The sha256 covers the bytes already there and the rest; nothing unverified
enters the cache."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import time
import uuid
from pathlib import Path
from typing import BinaryIO

import httpx

from edge_ai.common.http import CallFailed, EdgeClient
from edge_common import deltas as xor_deltas
from edge_common.compat import to_thread

log = logging.getLogger("edge.agent.fetch")


class FetchError(Exception):
    """The package could not be fetched (master unreachable or answered an error): retry later."""


class DigestMismatch(FetchError):
    """The bytes received do not hash to the digest asked for: refused, nothing kept."""


class PatchFailed(Exception):
    """A patch could not be fetched, applied or verified: the whole archive is fetched instead."""


# The patch formats this agent applies (the master serves the smallest of them).
PATCH_FORMATS = "hdiffpatch," + xor_deltas.FORMAT

# A whole download whose link drops after some bytes resumes at once, this many times in all;
# a link that gives nothing ends the fetch (FetchError, retried later, resuming from the partial).
RESUME_TRIES = 8
WRITE_BLOCK = 1 << 20  # bytes received are written to disk in blocks of this size, in a thread


class _Again(Exception):
    """Try the whole download again now (a dropped link after some progress, a partial that
    cannot be resumed)."""


def available_memory() -> int | None:
    """Bytes of memory available on this box (Linux's MemAvailable), or None when unknown: the
    master sends no patch whose applying would need more."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def apply_patch_file(base: Path, patch: Path, out: Path) -> str:
    """Apply a patch of either format (blocking); the result's sha256 hex."""
    if xor_deltas.is_patch(patch):
        try:
            return xor_deltas.apply(base, patch, out)
        except (xor_deltas.PatchError, OSError, MemoryError) as exc:
            raise PatchFailed(f"the patch does not apply: {type(exc).__name__}: {exc}") from exc
    import detools

    try:
        with open(base, "rb") as f_from, open(patch, "rb") as f_patch, open(out, "wb") as f_to:
            detools.apply_patch(f_from, f_patch, f_to)
            f_to.flush()
            os.fsync(f_to.fileno())
    except (detools.Error, ValueError, EOFError, OSError, MemoryError) as exc:
        raise PatchFailed(f"the patch does not apply: {type(exc).__name__}: {exc}") from exc
    sha = hashlib.sha256()
    with open(out, "rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


class PackageFetcher:
    """Fetches package archives by ``sha256:<hex>`` digest into ``<workdir>/cache/sha256/<hex>``.

    ``fetch(digest, base=...)`` is the one entry point. With ``base`` (the digest of an archive
    the agent has, the version it runs now) it first asks the master for a patch
    (``GET /artifacts/<digest>/delta?from=<base>``), applies it and checks the result against
    ``digest``; on any failure (no patch, a corrupt or truncated one, a wrong base) it downloads
    the whole archive (``GET /artifacts/<digest>``), also verified. Nothing unverified enters the
    cache.
    """

    def __init__(
        self,
        *,
        master_url: str,
        auth: httpx.Auth | None,
        cache_dir: Path,
        timeout_s: float,
        max_bytes: int,
        verify: ssl.SSLContext | bool = True,
    ):
        self.master_url = master_url.rstrip("/")
        self.cache_dir = cache_dir / "sha256"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._master = EdgeClient(
            "master",
            self.master_url,
            auth=auth,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            verify=verify,
        )
        self._locks: dict[str, asyncio.Lock] = {}
        # What the last downloads were, for the agent's reports and the tests.
        self.patch_seconds: list[float] = []
        self.stats = {
            "delta": 0,
            "full": 0,
            "delta_failed": 0,
            "delta_bytes": 0,
            "full_bytes": 0,  # bytes received for whole archives, resumed parts included
            "resumed": 0,  # requests that asked for the rest of a partial download
        }

    async def aclose(self) -> None:
        await self._master.aclose()

    def path_for(self, digest: str) -> Path:
        return self.cache_dir / digest.split(":", 1)[1]

    async def fetch(self, digest: str, base: str | None = None) -> Path:
        """The archive's local path, downloading and verifying it first unless already cached."""
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:  # two workloads needing the same package download it once
            path = self.path_for(digest)
            if path.exists():
                return path
            if base and base != digest and self.path_for(base).is_file():
                try:
                    await self._via_patch(digest, base, path)
                    return path
                except PatchFailed as exc:
                    self.stats["delta_failed"] += 1
                    log.warning(
                        "patch %s -> %s not used (%s): fetching it whole", base, digest, exc
                    )
            await self._download_full(digest, path)
            return path

    async def _download(self, path: str, tmp: Path, what: str) -> tuple[int, str]:
        """Stream the master's ``path`` into ``tmp``: (bytes, sha256 hex); FetchError on any
        failure."""
        sha = hashlib.sha256()
        size = 0
        try:
            async with self._master.stream("GET", path) as response:
                # Disk work in a thread (one 1 MiB chunk at a time): the agent stays responsive.
                out = await to_thread(open, tmp, "wb")
                try:
                    async for chunk in response.aiter_bytes(1 << 20):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise FetchError(f"{what} is larger than {self.max_bytes} bytes")
                        sha.update(chunk)
                        await to_thread(out.write, chunk)
                    await to_thread(_sync, out)
                finally:
                    await to_thread(out.close)
        except CallFailed as exc:
            if exc.status is not None:
                raise FetchError(f"master answered {exc.status} for {what}") from exc
            raise FetchError(f"cannot fetch {what} from the master: {exc.message}") from exc
        return size, sha.hexdigest()

    def _tmp(self, path: Path, kind: str) -> Path:
        return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{kind}")

    def _delta_path(self, digest: str, base: str) -> str:
        url = f"/artifacts/{digest}/delta?from={base}&formats={PATCH_FORMATS}"
        memory = available_memory()
        return url if memory is None else f"{url}&memory={memory}"

    async def _via_patch(self, digest: str, base: str, path: Path) -> None:
        patch, out = self._tmp(path, "patch"), self._tmp(path, "part")
        try:
            try:
                size, _ = await self._download(
                    self._delta_path(digest, base),
                    patch,
                    f"the patch {base} -> {digest}",
                )
            except FetchError as exc:
                raise PatchFailed(str(exc)) from exc
            started = time.perf_counter()
            got = await to_thread(apply_patch_file, self.path_for(base), patch, out)
            self.patch_seconds.append(time.perf_counter() - started)
            if f"sha256:{got}" != digest:
                raise PatchFailed(f"the patched archive is sha256:{got}, not {digest}")
            os.replace(out, path)
            self.stats["delta"] += 1
            self.stats["delta_bytes"] += size
            log.info("fetched package %s as a %d-byte patch from %s", digest, size, base)
        finally:
            patch.unlink(missing_ok=True)
            out.unlink(missing_ok=True)

    def _partial(self, digest: str) -> tuple[Path, Path]:
        """Where a whole download of ``digest`` is kept while it is incomplete, and the ETag it
        started with."""
        name = f".{digest.split(':', 1)[1]}.partial"
        return self.cache_dir / name, self.cache_dir / f"{name}.etag"

    async def _download_full(self, digest: str, path: Path) -> None:
        """The whole archive into ``path``, verified; resumed from a partial download."""
        expected = digest.split(":", 1)[1]
        partial, etag_file = self._partial(digest)
        what = f"package {digest}"
        from_scratch = False  # a resumed download that did not verify is redone once, whole
        tries = 0
        while True:
            tries += 1
            try:
                offset, size, got = await self._download_resumable(
                    f"/artifacts/{digest}", partial, etag_file, what
                )
            except _Again as exc:
                if tries >= RESUME_TRIES:
                    raise FetchError(f"cannot fetch {what}: {exc}") from exc
                log.info("fetching %s again: %s", what, exc)
                continue
            if got == expected:
                break
            _discard(partial, etag_file)
            if offset and not from_scratch:
                from_scratch = True
                log.warning(
                    "%s resumed from %d bytes did not verify: fetching it whole", what, offset
                )
                continue
            raise DigestMismatch(
                f"package digest mismatch: asked for {digest}, received sha256:{got}"
            )
        os.replace(partial, path)
        etag_file.unlink(missing_ok=True)
        self.stats["full"] += 1
        log.info("fetched package %s (%d bytes)", digest, size)

    async def _download_resumable(
        self, url: str, partial: Path, etag_file: Path, what: str
    ) -> tuple[int, int, str]:
        """Stream ``url`` into ``partial``, asking only for what it lacks when it holds the start
        of the same archive: (the offset resumed from, the file's size, its sha256 hex). The
        partial stays when the link drops (``_Again`` when some bytes came, else FetchError),
        unless the master gave no strong ETag to resume it with."""
        offset, etag = await to_thread(_resumable, partial, etag_file)
        sha = await to_thread(_sha256_of, partial, offset) if offset else hashlib.sha256()
        headers = {"Range": f"bytes={offset}-", "If-Range": etag} if offset else {}
        received = 0
        too_large = False
        tag = etag  # the strong ETag of what is being received: without one, nothing to resume
        try:
            async with self._master.stream("GET", url, headers=headers) as response:
                if response.status_code == 206:
                    if not response.headers.get("content-range", "").startswith(f"bytes {offset}-"):
                        _discard(partial, etag_file)
                        raise _Again("the master sent another range than the one asked for")
                    self.stats["resumed"] += 1
                    log.info("resuming %s from byte %d", what, offset)
                else:  # the whole archive: no partial, or not the same archive any more
                    offset, sha = 0, hashlib.sha256()
                    tag = response.headers.get("etag", "")
                    tag = "" if tag.startswith("W/") else tag
                    await to_thread(_write_etag, etag_file, tag)
                out = await to_thread(open, partial, "ab" if offset else "wb")
                block: list[bytes] = []
                pending = 0
                try:
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        self.stats["full_bytes"] += len(chunk)
                        if offset + received > self.max_bytes:
                            too_large = True
                            break
                        sha.update(chunk)
                        block.append(chunk)
                        pending += len(chunk)
                        if pending >= WRITE_BLOCK:
                            data, block, pending = b"".join(block), [], 0
                            await to_thread(out.write, data)
                    if block:
                        await to_thread(out.write, b"".join(block))
                        block = []
                    if not too_large:
                        await to_thread(_sync, out)
                finally:
                    # What came before a dropped link is kept: the next request asks for the rest.
                    if block:
                        await to_thread(out.write, b"".join(block))
                    await to_thread(out.close)
        except CallFailed as exc:
            if exc.status == 416:  # the partial is not shorter than the archive: start over
                _discard(partial, etag_file)
                raise _Again(f"the master answered 416 to a range from byte {offset}") from exc
            if exc.status is not None:
                raise FetchError(f"master answered {exc.status} for {what}") from exc
            if not tag:  # a partial that could not be resumed is not kept
                _discard(partial, etag_file)
            elif received:
                raise _Again(f"the link dropped after {offset + received} bytes") from exc
            raise FetchError(f"cannot fetch {what} from the master: {exc.message}") from exc
        if too_large:
            _discard(partial, etag_file)
            raise FetchError(f"{what} is larger than {self.max_bytes} bytes")
        return offset, offset + received, sha.hexdigest()

    def prune(self, keep: set[str], extra: int) -> None:
        """Drop cached archives not in ``keep``, beyond the ``extra`` most recently used, and
        the partial downloads of archives not in ``keep`` (unless being downloaded now)."""
        for p in self.cache_dir.glob(".*.partial*"):
            digest = f"sha256:{p.name[1:65]}"
            lock = self._locks.get(digest)
            if digest not in keep and not (lock is not None and lock.locked()):
                p.unlink(missing_ok=True)
        others = sorted(
            (
                p
                for p in self.cache_dir.iterdir()
                if len(p.name) == 64 and f"sha256:{p.name}" not in keep
            ),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for p in others[extra:]:
            p.unlink(missing_ok=True)


def _sync(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def _resumable(partial: Path, etag_file: Path) -> tuple[int, str]:
    """(bytes, ETag) of a partial download that can be resumed: (0, "") when there is none, or
    it has no strong ETag to ask ``If-Range`` with (then it is dropped)."""
    try:
        etag = etag_file.read_text().strip()
        size = partial.stat().st_size
    except OSError:
        _discard(partial, etag_file)
        return 0, ""
    if not etag or etag.startswith("W/") or not size:
        _discard(partial, etag_file)
        return 0, ""
    return size, etag


def _write_etag(etag_file: Path, etag: str) -> None:
    """The strong ETag a whole download started with (none: it cannot be resumed)."""
    if etag:
        etag_file.write_text(etag)
    else:
        etag_file.unlink(missing_ok=True)


def _sha256_of(path: Path, size: int) -> hashlib._Hash:
    """The running sha256 of the first ``size`` bytes of ``path`` (a partial download)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left > 0:
            block = f.read(min(left, 1 << 20))
            if not block:
                break
            sha.update(block)
            left -= len(block)
    return sha


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
