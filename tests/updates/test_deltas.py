"""The agent's fetcher with binary patches, against a real HTTP server: a good patch is applied
and verified; a corrupt patch, a truncated download, a patch for the wrong base, or no patch at
all each end with the whole archive fetched and verified, and nothing unverified in the cache."""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from edge_ai.agent.fetcher import DigestMismatch, PackageFetcher
from services.master.artifacts.deltas import build_patch


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Server:
    """``/artifacts/<d>`` from ``blobs``; ``/artifacts/<d>/delta?from=<b>`` from ``patches``;
    ``truncate``: paths answered with half their bytes and the connection closed."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.patches: dict[tuple[str, str], bytes] = {}
        self.truncate: set[str] = set()
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.paths.append(self.path)
                path, _, query = self.path.partition("?")
                parts = path.split("/")
                body = None
                if len(parts) == 3:
                    body = server.blobs.get(parts[2])
                elif len(parts) == 4 and parts[3] == "delta":
                    base = parse_qs(query)["from"][0]  # the agent also names formats, memory
                    body = server.patches.get((base, parts[2]))
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def make_versions(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    old = os.urandom(1 << 20)
    new = bytearray(old)
    new[1000:21000] = os.urandom(20000)
    old_path, new_path, patch_path = tmp_path / "old", tmp_path / "new", tmp_path / "patch"
    old_path.write_bytes(old)
    new_path.write_bytes(bytes(new))
    build_patch(old_path, new_path, patch_path)
    return old, bytes(new), patch_path.read_bytes()


async def fetcher_with(tmp_path: Path, server: Server, old: bytes) -> PackageFetcher:
    f = PackageFetcher(
        master_url=server.url,
        auth=None,
        cache_dir=tmp_path / "cache",
        timeout_s=10,
        max_bytes=1 << 30,
    )
    f.path_for(digest(old)).write_bytes(old)  # the version the edge runs now
    return f


def cache_files(f: PackageFetcher) -> set[str]:
    return {p.name for p in f.cache_dir.iterdir()}


async def test_a_patch_is_applied_and_verified(tmp_path, server):
    old, new, patch = make_versions(tmp_path)
    server.blobs[digest(new)] = new
    server.patches[(digest(old), digest(new))] = patch
    f = await fetcher_with(tmp_path, server, old)
    try:
        path = await f.fetch(digest(new), base=digest(old))
        assert path.read_bytes() == new
        assert f.stats["delta"] == 1 and f.stats["full"] == 0
        assert f.stats["delta_bytes"] == len(patch) < len(new) // 10
        assert len(f.patch_seconds) == 1
        assert cache_files(f) == {digest(old)[7:], digest(new)[7:]}
    finally:
        await f.aclose()


@pytest.mark.parametrize("fault", ["corrupt", "truncated", "wrong_base", "no_patch"])
async def test_any_patch_failure_falls_back_to_the_whole_archive(tmp_path, server, fault):
    old, new, patch = make_versions(tmp_path)
    server.blobs[digest(new)] = new
    d_old, d_new = digest(old), digest(new)
    if fault == "corrupt":
        bad = bytearray(patch)
        for i in range(len(bad) // 2, len(bad) // 2 + 64):
            bad[i] ^= 0xFF
        server.patches[(d_old, d_new)] = bytes(bad)
    elif fault == "truncated":
        server.patches[(d_old, d_new)] = patch
        server.truncate.add(f"/artifacts/{d_new}/delta")
    elif fault == "wrong_base":
        # The master's patch is from another base than the edge's file: the result's sha256
        # is not the one asked for.
        other = bytearray(new)  # a base close to the target: the patch copies from it
        other[500_000:500_100] = b"x" * 100
        (tmp_path / "other").write_bytes(bytes(other))
        build_patch(tmp_path / "other", tmp_path / "new", tmp_path / "p2")
        server.patches[(d_old, d_new)] = (tmp_path / "p2").read_bytes()
    f = await fetcher_with(tmp_path, server, old)
    try:
        path = await f.fetch(d_new, base=d_old)
        assert path.read_bytes() == new
        assert f.stats["full"] == 1 and f.stats["delta"] == 0
        assert f.stats["delta_failed"] == 1
        assert f"/artifacts/{d_new}" in server.paths  # the whole archive was asked for
        # Nothing half-written: only the two verified archives.
        assert cache_files(f) == {d_old[7:], d_new[7:]}
    finally:
        await f.aclose()


async def test_a_truncated_full_download_is_refused_and_nothing_kept(tmp_path, server):
    old, new, _ = make_versions(tmp_path)
    d_new = digest(new)
    server.blobs[d_new] = new
    server.truncate.add(f"/artifacts/{d_new}")
    f = await fetcher_with(tmp_path, server, old)
    try:
        with pytest.raises(Exception) as exc_info:
            await f.fetch(d_new, base=digest(old))
        assert not isinstance(exc_info.value, AssertionError)
        assert cache_files(f) == {digest(old)[7:]}
        # And bytes that do not hash to the digest are refused.
        server.truncate.clear()
        server.blobs[d_new] = old
        with pytest.raises(DigestMismatch):
            await f.fetch(d_new)
        assert cache_files(f) == {digest(old)[7:]}
    finally:
        await f.aclose()
