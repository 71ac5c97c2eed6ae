"""Clients that go away mid-request, against the gateway as a real process: an upload cut half
way leaves no file and no job behind, a Server-Sent Events listener that hangs up leaves the
service answering."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.analysis.conftest import BUS, REDIS_URL
from tests.analysis.test_videos import make_video
from tests.helpers.env import OPERATOR, OPERATOR_TOKEN, free_port, service_env
from tests.helpers.processes import start_service


@pytest.fixture
def served(database_url: str, prefix: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    videos = tmp_path / "videos"
    port = free_port()
    env = service_env(
        database_url,
        EDGE_REDIS_URL=REDIS_URL,
        ANALYSIS_KEY_PREFIX=prefix,
        ANALYSIS_VIDEO_DIR=str(videos),
        ANALYSIS_RATE_PER_S="0",
    )
    proc = start_service("analysis", env=env, port=port, tmp_path=tmp_path)
    try:
        yield f"http://127.0.0.1:{port}", videos
    finally:
        proc.stop()


def cut_upload(base: str, path: str, body: bytes, declared: int) -> None:
    """Send the head of a request that declares ``declared`` bytes, then ``body``, then hang up."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
        )
        conn.sendall(head.encode() + body)
        time.sleep(0.3)  # the server has read what came


def wait_until(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


def test_uploads_cut_half_way_leave_nothing_behind(served, tmp_path):
    base, videos = served
    video = make_video(tmp_path / "in.mp4", frames=20)
    cut_upload(base, "/videos", video[: len(video) // 2], declared=len(video))
    cut_upload(base, "/analyze?async=true", BUS[: len(BUS) // 2], declared=len(BUS))
    # The part of the video that came is removed once the server sees the hang-up.
    wait_until(lambda: not list(videos.glob("*.video")))
    queue = httpx.get(f"{base}/queue", headers=OPERATOR).json()
    assert queue["depth"] == 0, queue  # no job from the cut image
    # The service goes on: a whole upload is taken.
    r = httpx.post(f"{base}/videos", content=video, headers=OPERATOR, timeout=30)
    assert r.status_code == 202, r.text


def test_an_events_listener_that_hangs_up_leaves_the_service_answering(served, tmp_path):
    base, _ = served
    video = make_video(tmp_path / "in.mp4", frames=3)
    accepted = httpx.post(f"{base}/videos", content=video, headers=OPERATOR, timeout=30).json()
    # No worker runs: the stream waits for frames; the listener reads its head and hangs up.
    for _ in range(3):
        with httpx.stream("GET", f"{base}{accepted['events']}", headers=OPERATOR) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
    assert httpx.get(f"{base}/healthz").status_code == 200
    status = httpx.get(f"{base}{accepted['status_url']}", headers=OPERATOR).json()
    assert status["status"] == "analysing" and status["frames_done"] == 0
