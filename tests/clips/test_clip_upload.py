"""Event clips from the edge's side: the YOLO worker's recorder writes an MP4 around an event, its
uploader sends it to a VMS process in chunks; the VMS is killed mid-upload and started again, and
the upload resumes from the offset the VMS holds (never from the start). The clip is indexed,
served with HTTP range requests, never stored twice, and retention deletes by size."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from edge_ai.common.runtime import Stop
from edge_ai.yolo.clips import ClipRecorder, ClipUploader
from shared.edge_tokens import issue_edge_token
from tests.helpers.env import OPERATOR_TOKEN, SIGNER, free_port, service_env
from tests.helpers.processes import Proc, edgectl, start_service

NID = "0x31"


@dataclass
class Det:
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]


def _vms(db: str, tmp_path: Path, port: int, clips: Path, **extra: str) -> Proc:
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = service_env(
        db, EDGE_SETUP_URL=nowhere, EDGE_OPTIMIZER_URL=nowhere, VMS_CLIPS_DIR=str(clips), **extra
    )
    return start_service("vms", env=env, port=port, tmp_path=tmp_path)


def _record(folder: Path, seed: int = 7) -> Path:
    """A real clip: noise frames (large, so the upload takes many chunks), a person at t=2.5 s."""
    rng = np.random.default_rng(seed)
    recorder = ClipRecorder(folder, nid=NID, classes={"person"}, pre_s=2.0, post_s=2.0)
    written = None
    t0 = 1_800_000_000.0 + seed * 100
    for i in range(60):
        frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        seen = [Det("person", 0.9, (10, 10, 100, 200))] if i == 25 else []
        written = recorder.add(t0 + i * 0.1, frame, seen) or written
    assert written is not None and written.exists()
    return written


def _operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def test_a_clip_upload_cut_by_a_vms_crash_resumes_from_its_offset(db, tmp_path):
    clips_dir = tmp_path / "vms-clips"
    port = free_port()
    proc = _vms(db, tmp_path, port, clips_dir)
    folder = tmp_path / "edge-clips"
    path = _record(folder)
    data = path.read_bytes()
    clip_id = hashlib.sha256(data).hexdigest()
    assert len(data) > 100_000, len(data)
    meta = path.with_suffix(".json").read_text()
    assert '"person"' in meta
    token = issue_edge_token(NID, SIGNER)
    uploader = ClipUploader(
        folder,
        vms_url=f"http://127.0.0.1:{port}",
        token=token,
        budget_bps=60_000,
        chunk_bytes=8 * 1024,
    )
    stop = Stop()
    task = asyncio.create_task(uploader.run(stop))
    try:
        part = clips_dir / ".partial" / f"{clip_id}.part"
        deadline = time.monotonic() + 30
        while not (part.exists() and 0 < part.stat().st_size < len(data) // 2):
            assert time.monotonic() < deadline, "the upload did not start"
            await asyncio.sleep(0.05)
        proc.stop(signal.SIGKILL)  # the link drops mid-upload
        held = part.stat().st_size
        assert 0 < held < len(data)
        await asyncio.sleep(1.0)
        proc = _vms(db, tmp_path, port, clips_dir)
        deadline = time.monotonic() + 60
        while uploader.uploaded == 0:
            assert time.monotonic() < deadline, "the upload did not finish after the restart"
            await asyncio.sleep(0.2)
    finally:
        stop.event.set()
        await task
    assert uploader.resumed_at and uploader.resumed_at[0] >= held  # resumed, not restarted
    # Bytes sent: the whole clip once, plus at most the chunk the crash cut.
    assert uploader.sent_bytes <= len(data) + 2 * 8 * 1024
    assert not path.exists()  # the edge's copy goes once the VMS holds it

    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, headers=_operator(), timeout=10) as http:
        listed = (await http.get("/clips", params={"nid": NID})).json()
        assert [c["id"] for c in listed["items"]] == [clip_id]
        item = listed["items"][0]
        assert item["size"] == len(data) and item["classes"] == ["person"]
        assert 3.0 <= item["duration_s"] <= 5.0 and item["event"].startswith(NID)
        whole = await http.get(f"/clips/{clip_id}/video")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "video/mp4"
        part_answer = await http.get(f"/clips/{clip_id}/video", headers={"Range": "bytes=100-199"})
        assert part_answer.status_code == 206 and part_answer.content == data[100:200]
        # An edge token reads no clip; another edge uploads none under this edge's nid.
        other = {"Authorization": f"Bearer {issue_edge_token('0x32', SIGNER)}"}
        assert (await http.get("/clips", headers=other)).status_code == 403
        body = {
            "clip_id": clip_id,
            "nid": NID,
            "event": "x",
            "started_at": "2027-01-01T00:00:00Z",
            "duration_s": 1,
            "size": len(data),
        }
        assert (await http.post("/clips/uploads", json=body, headers=other)).status_code == 403

    # The same clip again (an edge that lost its record of the upload): never stored twice.
    path.write_bytes(data)
    path.with_suffix(".json").write_text(meta)
    again = ClipUploader(folder, vms_url=base, token=token, chunk_bytes=8 * 1024)
    await again.upload(path)
    assert again.sent_bytes == 0 and again.uploaded == 1
    assert len(list((clips_dir / NID).glob("*.mp4"))) == 1

    # The operator's CLI: list, and get by a prefix of the id.
    env = {**os.environ, "EDGE_VMS_URL": base, "EDGE_OPERATOR_TOKEN": OPERATOR_TOKEN}
    listed = subprocess.run(
        edgectl("clips", "list", "--json"), env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert [c["id"] for c in json.loads(listed.stdout)["items"]] == [clip_id]
    target = tmp_path / "got.mp4"
    got = subprocess.run(
        edgectl("clips", "get", clip_id[:10], "-o", str(target)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == data
    proc.stop()


async def test_retention_keeps_each_edge_within_its_byte_budget(db, tmp_path):
    clips_dir = tmp_path / "vms-clips"
    paths = [_record(tmp_path / f"edge-clips-{n}", seed=n) for n in range(2)]
    sizes = [p.stat().st_size for p in paths]
    # Room for one clip of this edge, not two: the older goes.
    budget = int(max(sizes) * 1.5)
    assert sum(sizes) > budget
    port = free_port()
    proc = _vms(db, tmp_path, port, clips_dir, VMS_CLIPS_MAX_BYTES_PER_EDGE=str(budget))
    try:
        token = issue_edge_token(NID, SIGNER)
        newest = hashlib.sha256(paths[1].read_bytes()).hexdigest()
        for path in paths:
            uploader = ClipUploader(path.parent, vms_url=f"http://127.0.0.1:{port}", token=token)
            await uploader.upload(path)
        r = httpx.get(
            f"http://127.0.0.1:{port}/clips", params={"nid": NID}, headers=_operator(), timeout=10
        )
        assert [c["id"] for c in r.json()["items"]] == [newest]
        assert [p.stem for p in (clips_dir / NID).glob("*.mp4")] == [newest]
    finally:
        proc.stop()
