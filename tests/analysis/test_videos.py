"""Videos: upload, per-frame results over Server-Sent Events, status, the annotated file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.analysis.conftest import BUS, gateway
from tests.helpers.env import OPERATOR


def make_video(path: Path, frames: int = 6) -> bytes:
    bus = cv2.imdecode(np.frombuffer(BUS, np.uint8), cv2.IMREAD_COLOR)
    assert bus is not None
    picture = cv2.resize(bus, (240, 320))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (240, 320))
    for i in range(frames):
        writer.write(np.roll(picture, i * 8, axis=1))
    writer.release()
    return path.read_bytes()


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_a_video_is_analysed_frame_by_frame_and_annotated(db, prefix, worker, tmp_path):
    video = make_video(tmp_path / "in.mp4")
    async with gateway(db, prefix, video_dir=str(tmp_path / "videos")) as client:
        r = await client.post(
            "/videos", content=video, headers={**OPERATOR, "Content-Type": "video/mp4"}
        )
        assert r.status_code == 202, r.text
        accepted = r.json()
        assert (
            accepted["frames_total"],
            accepted["width"],
            accepted["height"],
            accepted["fps"],
        ) == (6, 240, 320, 10.0)
        events = sse_events((await client.get(accepted["events"], headers=OPERATOR)).text)
        frames = [data for kind, data in events if kind == "frame"]
        assert [f["frame"] for f in frames] == list(range(6))
        assert [f["time_s"] for f in frames] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
        assert all(f["status"] == "done" and f["fps"] > 0 and f["detections"] == [] for f in frames)
        assert events[-1] == ("end", {"end": True, "status": "done", "frames": 6})
        # A listener that comes late gets every frame again, then the end.
        assert len(sse_events((await client.get(accepted["events"], headers=OPERATOR)).text)) == 7
        status = (await client.get(accepted["status_url"], headers=OPERATOR)).json()
        assert status["status"] == "done" and status["frames_done"] == 6 and status["rendered"] == 6
        r = await client.get(accepted["annotated"], headers=OPERATOR)
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        (tmp_path / "out.mp4").write_bytes(r.content)
        capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
        capture.release()
        assert not list((tmp_path / "videos").glob("*.video"))  # the upload is removed


async def test_bad_videos_and_unknown_ids(db, prefix, tmp_path):
    video = make_video(tmp_path / "in.mp4", frames=3)
    # No worker runs here: a frame job still waiting when the gateway stops waits out
    # ANALYSIS_SYNC_TIMEOUT_S (60 s by default), so this gateway's is short.
    async with gateway(
        db,
        prefix,
        video_dir=str(tmp_path / "videos"),
        video_max_bytes=len(video) + 10,
        sync_timeout_s=3,
    ) as client:
        fake_mp4 = (
            b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8
        )  # an MP4 header, then garbage
        for body in (b"", b"this is not a video at all", fake_mp4, video[: len(video) // 3]):
            r = await client.post("/videos", content=body, headers=OPERATOR)
            assert r.status_code == 422 and r.json()["error"]["field"] == "body", r.text
        r = await client.post("/videos", content=video + b"\x00" * 64, headers=OPERATOR)
        assert r.status_code == 413
        assert (await client.post("/videos", content=video)).status_code == 401
        for path in ("/videos/0123abcd", "/videos/0123abcd/events", "/videos/0123abcd/annotated"):
            r = await client.get(path, headers=OPERATOR)
            assert r.status_code == 404 and r.json()["error"]["field"] == "video_id", path
        assert (await client.get("/videos/not-an-id!", headers=OPERATOR)).status_code == 422
        # No worker runs: the video waits, and its annotated file is not there yet.
        accepted = (await client.post("/videos", content=video, headers=OPERATOR)).json()
        r = await client.get(accepted["annotated"], headers=OPERATOR)
        assert r.status_code == 409 and "analysing" in r.json()["error"]["message"]
        assert not list((tmp_path / "videos").glob("*.mp4"))
        app = client.app  # type: ignore[attr-defined]
    # The gateway stopped: its video is marked failed, not left "analysing".
    async with gateway(db, prefix, video_dir=str(tmp_path / "videos")) as client:
        status = (await client.get(accepted["status_url"], headers=OPERATOR)).json()
        assert status["status"] == "failed" and status["error"] == "the gateway stopped"
    assert not app.state.videos.tasks


def test_camera_frames_over_a_websocket(db, prefix, worker):
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from services.analysis.app import create_app
    from tests.analysis.conftest import ZIDANE, analysis_settings, png_header_only, variant

    app = create_app(analysis_settings(db, prefix))
    with TestClient(app) as client:
        with client.websocket_connect("/ws/frames", headers=OPERATOR) as ws:
            ws.send_bytes(variant(BUS, "ws1"))
            first = ws.receive_json()
            assert first["status"] == "done" and (first["width"], first["height"]) == (810, 1080)
            ws.send_text("hello")
            assert ws.receive_json()["error"]["field"] == "frame"
            ws.send_bytes(b"garbage")
            assert ws.receive_json()["error"] == {
                "type": "invalid",
                "message": "the image must be a JPEG or PNG",
                "field": "image",
            }
            # Zero bytes, a 20,000 x 20,000 image, a truncated JPEG: each refused, still open.
            for bad in (b"", png_header_only(20_000, 20_000), BUS[: len(BUS) // 2]):
                ws.send_bytes(bad)
                answer = ws.receive_json()
                assert answer["error"]["field"] == "image", answer
            ws.send_bytes(variant(ZIDANE, "ws2"))
            assert ws.receive_json()["width"] == 1280
            ws.send_bytes(variant(ZIDANE, "ws3"))  # and gone before the answer
        with client.websocket_connect(
            "/ws/frames", headers=OPERATOR
        ) as ws:  # the service is still up
            ws.send_bytes(variant(BUS, "ws1"))
            assert ws.receive_json()["cached"] is True
        try:
            with client.websocket_connect("/ws/frames") as ws:
                ws.receive_json()
            raise AssertionError("a connection without a token was accepted")
        except WebSocketDisconnect as exc:
            assert exc.code == 1008
