"""Archives travel in parts (issue 24 item 1): the master answers byte ranges (206, 416 past
the end, the whole archive when ``If-Range`` names another one), and the agent's fetcher whose
link drops mid-download asks for the rest from its offset, not the whole archive again, also
after the agent restarts; a partial that is not the start of the archive is caught by the
sha256 and fetched whole. Real setup and master processes; between the fetcher and the master a
TCP proxy that cuts the link after a given number of bytes of an answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

import httpx
import pytest

from edge_ai.agent.fetcher import FetchError, PackageFetcher
from tests.helpers.env import OPERATOR, SERVICE
from tests.updates.test_delta_cache import urls as urls  # the fixture
from tests.updates.test_pull_agent import metric, upload
from tests.updates.test_weight_deltas import Bearer

MODEL = 3 * 1024 * 1024  # random bytes: the archive is a little over 3 MiB


@dataclass
class Exchange:
    """One connection through the proxy: the request's head and what came back."""

    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    body_bytes: int = 0  # bytes of the answer's body passed on to the fetcher


class CuttingProxy:
    """Passes connections on to the master; the n-th connection's answer is cut (the link
    closed) after ``cuts[n]`` bytes of its body (0: before its head), later ones pass whole."""

    def __init__(self, upstream: str, cuts: list[int]):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.cuts = list(cuts)
        self.exchanges: list[Exchange] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        cut = self.cuts.pop(0) if self.cuts else None
        ex = Exchange()
        self.exchanges.append(ex)
        up_r, up_w = await asyncio.open_connection(*self.upstream)
        try:
            head = await client_r.readuntil(b"\r\n\r\n")  # a GET: no body
            lines = head.decode("latin-1").split("\r\n")
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    ex.headers[name.strip().lower()] = value.strip()
            if cut == 0:
                return  # the link drops before any answer
            up_w.write(head)
            await up_w.drain()
            answer_head = await up_r.readuntil(b"\r\n\r\n")
            ex.status = int(answer_head.split(b" ", 2)[1])
            # One exchange a connection: the fetcher never reuses one this proxy closes.
            client_w.write(answer_head[:-2] + b"connection: close\r\n\r\n")
            while block := await up_r.read(64 * 1024):
                if cut is not None and ex.body_bytes + len(block) >= cut:
                    block = block[: cut - ex.body_bytes]
                client_w.write(block)
                ex.body_bytes += len(block)
                await client_w.drain()
                if cut is not None and ex.body_bytes >= cut:
                    return  # the link drops mid-answer
                if _complete(answer_head, ex.body_bytes):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            for w in (client_w, up_w):
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()


def _complete(head: bytes, body_bytes: int) -> bool:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return body_bytes >= int(line.split(b":", 1)[1])
    return False


@pytest.fixture
def deployed(urls):
    """An edge with a deployment of a 3 MiB package: (master URL, edge token, digest)."""
    setup = httpx.Client(base_url=urls[0], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=urls[1], timeout=60)
    ai = upload(master, "01", os.urandom(MODEL))
    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    edge = setup.post("/edges", json={"name": "e1", "nid": "0x21", "cluster_id": cluster["id"]})
    r = setup.post("/deployments", json={"edge_id": edge.json()["id"], "ai_id": ai["id"]})
    assert r.status_code == 201, r.text
    return urls[1], edge.json()["token"], ai["package_digest"]


def fetcher_for(url: str, token: str, tmp_path) -> PackageFetcher:
    return PackageFetcher(
        master_url=url,
        auth=Bearer(token),
        cache_dir=tmp_path / "edge-cache",
        timeout_s=30,
        max_bytes=1 << 30,
    )


async def test_archives_travel_in_parts_and_a_dropped_download_resumes(urls, deployed, tmp_path):
    """One master for every case (starting one and building a package is most of the time)."""
    await asyncio.to_thread(the_master_answers_byte_ranges, *deployed)
    await asyncio.to_thread(small_archives_are_answered_from_memory, urls, *deployed, tmp_path)
    await a_dropped_download_resumes_from_its_offset(*deployed, tmp_path / "a")
    await a_partial_download_survives_the_agent_and_resumes(*deployed, tmp_path / "b")
    await a_partial_of_something_else_is_not_kept(*deployed, tmp_path / "c")


def the_master_answers_byte_ranges(url: str, token: str, digest: str) -> None:
    master = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})
    whole = master.get(f"/artifacts/{digest}")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    etag, size = whole.headers["etag"], len(whole.content)
    assert etag == f'"{digest}"' and size > MODEL

    r = master.get(f"/artifacts/{digest}", headers={"Range": "bytes=1000-", "If-Range": etag})
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    assert r.content == whole.content[1000:]
    r = master.get(f"/artifacts/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == whole.content[10:20]
    r = master.get(f"/artifacts/{digest}", headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == whole.content[-5:]

    # The caller has part of another archive: the whole of this one.
    other = '"sha256:' + "0" * 64 + '"'
    r = master.get(f"/artifacts/{digest}", headers={"Range": "bytes=1000-", "If-Range": other})
    assert r.status_code == 200 and r.content == whole.content

    r = master.get(f"/artifacts/{digest}", headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    assert r.json()["error"]["type"] == "range_not_satisfiable"
    assert r.json()["error"]["field"] == "Range"
    for bad in ("lines=1-2", "bytes=20-10", "bytes=1-2,5-6", "bytes=-"):
        r = master.get(f"/artifacts/{digest}", headers={"Range": bad})
        assert r.status_code == 422 and r.json()["error"]["field"] == "Range", (bad, r.text)


HEADERS = (
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "accept-ranges",
    "cache-control",
    "docker-content-digest",
)


def small_archives_are_answered_from_memory(urls, url, token, large, tmp_path) -> None:
    """An edge's plain GET of a small archive is answered from memory
    (services.master.artifacts.fastpath) with the route's headers and counted as a download; a
    range, a large archive, an archive not deployed on the edge and a removed archive go on to
    the route, with its rules."""
    setup = httpx.Client(base_url=urls[0], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=url, timeout=30)
    one = {"Authorization": f"Bearer {token}"}
    ai = upload(master, "02", os.urandom(50_000))
    small = ai["package_digest"]
    cluster = setup.get("/clusters").json()["items"][0]
    e2 = setup.post("/edges", json={"name": "e2", "nid": "0x22", "cluster_id": cluster["id"]})
    two = {"Authorization": f"Bearer {e2.json()['token']}"}
    r = setup.post("/deployments", json={"edge_id": e2.json()["id"], "ai_id": ai["id"]})
    assert r.status_code == 201, r.text
    full = 'master_update_bytes_total{kind="full"}'
    sent_before = metric(master, full)

    # New to the master's view of edge 2: the route (it reads the view afresh), nothing held.
    first = master.get(f"/artifacts/{small}", headers=two)
    assert first.status_code == 200 and metric(master, "master_artifact_memory_bytes") == 0
    size = len(first.content)
    # Now in the view: from memory, the same bytes and headers, counted.
    for _ in range(2):
        again = master.get(f"/artifacts/{small}", headers=two)
        assert again.status_code == 200 and again.content == first.content
        assert [again.headers[h] for h in HEADERS] == [first.headers[h] for h in HEADERS]
    assert metric(master, "master_artifact_memory_bytes") == size
    assert metric(master, full) == sent_before + 3 * size

    # Not deployed on edge 1: refused (by the route), whether held or not.
    r = master.get(f"/artifacts/{small}", headers=one)
    assert r.status_code == 403 and r.json()["error"]["field"] == "digest", r.text
    # A range: the route's 206. A 3 MiB archive: streamed from disk, not held.
    r = master.get(f"/artifacts/{small}", headers={**two, "Range": "bytes=100-"})
    assert r.status_code == 206 and r.content == first.content[100:]
    assert master.get(f"/artifacts/{large}", headers=one).status_code == 200
    assert master.get(f"/artifacts/{small}", headers=SERVICE).content == first.content
    assert metric(master, "master_artifact_memory_bytes") == size
    # Removed from the store: not answered from memory.
    (tmp_path / "artifacts" / "sha256" / small.split(":", 1)[1]).unlink()
    r = master.get(f"/artifacts/{small}", headers=two)
    assert r.status_code == 404 and r.json()["error"]["field"] == "digest", r.text


async def a_dropped_download_resumes_from_its_offset(url, token, digest, tmp_path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as master:
        r = await master.get(f"/artifacts/{digest}", headers={"Authorization": f"Bearer {token}"})
    whole, size = r.content, len(r.content)
    cut = int(size * 0.4)

    # The link drops after 40 % of the archive; the fetcher asks for the rest at once.
    async with CuttingProxy(url, cuts=[cut]) as proxy:
        fetcher = fetcher_for(proxy.url, token, tmp_path)
        try:
            path = await fetcher.fetch(digest)
        finally:
            await fetcher.aclose()
    assert path.read_bytes() == whole
    first, second = proxy.exchanges
    assert "range" not in first.headers and first.body_bytes == cut
    assert second.headers["range"] == f"bytes={cut}-"
    assert second.headers["if-range"] == f'"{digest}"'
    assert second.status == 206 and second.body_bytes == size - cut
    transferred = first.body_bytes + second.body_bytes
    assert transferred < 2 * size and transferred == size
    assert fetcher.stats["resumed"] == 1 and fetcher.stats["full_bytes"] == size
    assert not list(path.parent.glob(".*partial*"))  # nothing left behind


async def a_partial_download_survives_the_agent_and_resumes(url, token, digest, tmp_path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as master:
        r = await master.get(f"/artifacts/{digest}", headers={"Authorization": f"Bearer {token}"})
    whole, size = r.content, len(r.content)
    cut = int(size * 0.7)

    # Cut after 70 %, then the link gives nothing: the fetch fails, the partial stays.
    async with CuttingProxy(url, cuts=[cut, 0]) as proxy:
        fetcher = fetcher_for(proxy.url, token, tmp_path)
        try:
            with pytest.raises(FetchError):
                await fetcher.fetch(digest)
        finally:
            await fetcher.aclose()
        assert [e.headers.get("range") for e in proxy.exchanges] == [None, f"bytes={cut}-"]
        # The agent restarts: a new fetcher on the same cache asks only for the rest.
        fetcher = fetcher_for(proxy.url, token, tmp_path)
        try:
            path = await fetcher.fetch(digest)
        finally:
            await fetcher.aclose()
    assert path.read_bytes() == whole
    last = proxy.exchanges[-1]
    assert last.headers["range"] == f"bytes={cut}-" and last.status == 206
    assert sum(e.body_bytes for e in proxy.exchanges) == size  # not a byte twice


async def a_partial_of_something_else_is_not_kept(url, token, digest, tmp_path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as master:
        r = await master.get(f"/artifacts/{digest}", headers={"Authorization": f"Bearer {token}"})
    whole, size = r.content, len(r.content)
    fetcher = fetcher_for(url, token, tmp_path)
    partial = fetcher.cache_dir / f".{digest.split(':', 1)[1]}.partial"
    etag_file = partial.with_name(partial.name + ".etag")
    async with CuttingProxy(url, cuts=[]) as proxy:
        await fetcher.aclose()
        fetcher = fetcher_for(proxy.url, token, tmp_path)
        try:
            # Started on another archive (another ETag): If-Range gets the whole of this one.
            partial.write_bytes(b"x" * 1000)
            etag_file.write_text('"sha256:' + "1" * 64 + '"')
            path = await fetcher.fetch(digest)
            assert path.read_bytes() == whole
            assert [(e.headers.get("range"), e.status) for e in proxy.exchanges] == [
                ("bytes=1000-", 200)
            ]
            # Damaged bytes under the right ETag: the sha256 refuses the result, and the
            # archive is fetched again from the start.
            path.unlink()
            partial.write_bytes(b"x" * 1000)
            etag_file.write_text(f'"{digest}"')
            path = await fetcher.fetch(digest)
            assert path.read_bytes() == whole
            assert [(e.headers.get("range"), e.status) for e in proxy.exchanges[1:]] == [
                ("bytes=1000-", 206),
                (None, 200),
            ]
            # A partial as long as the archive (a crash before it was checked): 416, whole.
            path.unlink()
            partial.write_bytes(whole)
            etag_file.write_text(f'"{digest}"')
            path = await fetcher.fetch(digest)
            assert path.read_bytes() == whole
            assert [(e.headers.get("range"), e.status) for e in proxy.exchanges[3:]] == [
                (f"bytes={size}-", 416),
                (None, 200),
            ]
        finally:
            await fetcher.aclose()
