"""Getting package archives from the master, by digest, into a local content-addressed cache."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import uuid
from pathlib import Path
from typing import BinaryIO

import httpx

log = logging.getLogger("edge.agent.fetch")


class FetchError(Exception):
    """The package could not be fetched (master unreachable or answered an error): retry later."""


class DigestMismatch(FetchError):
    """The bytes received do not hash to the digest asked for: refused, nothing kept."""


class PackageFetcher:
    """Fetches package archives by ``sha256:<hex>`` digest into ``<workdir>/cache/sha256/<hex>``.

    ``fetch(digest)`` is the one entry point: the whole archive from the master's
    ``GET /artifacts/sha256:<hex>``, verified against ``digest`` before it enters the cache.
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
        self._client = httpx.AsyncClient(
            auth=auth, timeout=httpx.Timeout(timeout_s, connect=10.0), verify=verify
        )
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    def path_for(self, digest: str) -> Path:
        return self.cache_dir / digest.split(":", 1)[1]

    async def fetch(self, digest: str) -> Path:
        """The archive's local path, downloading and verifying it first unless already cached."""
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:  # two workloads needing the same package download it once
            path = self.path_for(digest)
            if path.exists():
                return path
            await self._download_full(digest, path)
            return path

    async def _download_full(self, digest: str, path: Path) -> None:
        expected = digest.split(":", 1)[1]
        url = f"{self.master_url}/artifacts/{digest}"
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        sha = hashlib.sha256()
        size = 0
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise FetchError(f"master answered {response.status_code} for package {digest}")
                # Disk work in a thread (one 1 MiB chunk at a time): the API stays responsive.
                out = await asyncio.to_thread(open, tmp, "wb")
                try:
                    async for chunk in response.aiter_bytes(1 << 20):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise FetchError(
                                f"package {digest} is larger than {self.max_bytes} bytes"
                            )
                        sha.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
                    await asyncio.to_thread(_sync, out)
                finally:
                    await asyncio.to_thread(out.close)
            if sha.hexdigest() != expected:
                raise DigestMismatch(
                    "package digest mismatch: asked for "
                    f"{digest}, received sha256:{sha.hexdigest()}"
                )
            os.replace(tmp, path)
            log.info("fetched package %s (%d bytes)", digest, size)
        except httpx.HTTPError as exc:
            raise FetchError(
                f"cannot fetch package {digest} from the master: {exc.__class__.__name__}"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def prune(self, keep: set[str], extra: int) -> None:
        """Drop cached archives not in ``keep``, beyond the ``extra`` most recently used."""
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
