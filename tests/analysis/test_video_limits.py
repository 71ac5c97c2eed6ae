"""Videos are bounded before they cost (issue 25 item 4): size, frame count and duration are read
from the container's headers and checked before any frame is decoded, each frame takes a token of
the caller's rate limit, a video can be cancelled by its owner, and a body that is not a video is
refused. The videos are made by OpenCV here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared.edge_tokens import issue_edge_token
from tests.analysis.conftest import BUS, gateway
from tests.analysis.test_videos import make_video, sse_events
from tests.helpers.env import OPERATOR, SIGNER


def edge(nid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_edge_token(nid, SIGNER)}"}


def huge_avi(path: Path) -> bytes:
    """One 8000 x 8000 MJPEG frame: under a megabyte on disk, ~190 MB once decoded."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (8000, 8000))
    writer.write(np.zeros((8000, 8000, 3), np.uint8))
    writer.release()
    return path.read_bytes()


async def test_limits_are_checked_from_the_headers_before_decoding(
    db, prefix, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = huge_avi(tmp_path / "big.avi")
    six = make_video(tmp_path / "six.mp4", frames=6)  # 6 frames at 10 fps: 0.6 s
    async with gateway(db, prefix, video_dir=str(tmp_path / "v"), video_max_frames=5) as client:

        def no_decoding(*args: object) -> None:
            raise AssertionError("OpenCV opened a video that its headers already refuse")

        with monkeypatch.context() as patched:
            patched.setattr(cv2, "VideoCapture", no_decoding)
            r = await client.post("/videos", content=big, headers=OPERATOR)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["field"] == "body"
            assert "8000 x 8000" in error["message"]
            assert "ANALYSIS_VIDEO_MAX_PIXELS" in error["message"]
            r = await client.post("/videos", content=six, headers=OPERATOR)
            assert r.status_code == 422 and "ANALYSIS_VIDEO_MAX_FRAMES" in r.text, r.text
            # A JPEG is not a video (it used to be accepted with -2^63 frames).
            r = await client.post("/videos", content=BUS, headers=OPERATOR)
            assert r.status_code == 422 and "not a video" in r.json()["error"]["message"]
        assert not list((tmp_path / "v").iterdir())  # nothing left behind
    async with gateway(
        db, prefix, video_dir=str(tmp_path / "v"), video_max_duration_s=0.5
    ) as client:
        r = await client.post("/videos", content=six, headers=OPERATOR)
        assert r.status_code == 422 and "ANALYSIS_VIDEO_MAX_DURATION_S" in r.text, r.text


async def test_each_frame_takes_a_token_and_the_owner_cancels(db, prefix, tmp_path) -> None:
    video = make_video(tmp_path / "in.mp4", frames=6)
    # No worker: the frames wait in the queue. Bucket of 4, refilled once in 100 s.
    async with gateway(
        db, prefix, video_dir=str(tmp_path / "v"), rate_per_s=0.01, rate_capacity=4
    ) as client:
        r = await client.post("/videos", content=video, headers=edge("0x51"))
        assert r.status_code == 202, r.text
        accepted = r.json()
        app = client.app  # type: ignore[attr-defined]
        gw = app.state.gateway
        for _ in range(100):  # the upload took one token, three frames took the rest
            if await gw.redis.xlen(gw.keys.stream) >= 3:
                break
            await asyncio.sleep(0.05)
        assert await gw.redis.xlen(gw.keys.stream) == 3
        r = await client.post("/analyze?async=true", content=BUS, headers=edge("0x51"))
        assert r.status_code == 429 and r.headers["retry-after"]
        # Another edge may neither read nor cancel it; its owner may.
        cancel = f"/videos/{accepted['video_id']}/cancel"
        assert accepted["cancel"] == cancel
        assert (await client.post(cancel, headers=edge("0x52"))).status_code == 403
        assert (await client.post(cancel)).status_code == 401
        r = await client.post(cancel, headers=edge("0x51"))
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        events = sse_events((await client.get(accepted["events"], headers=OPERATOR)).text)
        assert events[-1][0] == "end" and events[-1][1]["status"] == "cancelled"
        r = await client.post(cancel, headers=OPERATOR)
        assert r.status_code == 409 and r.json()["error"]["field"] == "video_id"
        assert not app.state.videos.tasks
        assert not list((tmp_path / "v").iterdir())
        assert await gw.redis.xlen(gw.keys.stream) == 3  # no frame queued after the cancel
