"""Analysis throughput: end to end through the queue, beside the edge's way and the network alone.

All in one run, on the device given (CPU here):
- baseline, the edge's way: one ultralytics ``predict`` call per frame (decode included: JPEG
  bytes in), as edge_ai/yolo runs;
- ultralytics' own batched ``predict`` (a list of frames, ``batch=--batch``), for reference;
- ceiling, the network alone: the worker's forward passes over these images' input tensors
  (decoded and pre-processed beforehand, batches of --batch), no decode, no pre-processing, no NMS;
- end to end: JPEG bytes posted to the gateway (in-process, synchronous ``POST /analyze``, --batch
  x workers x 2 in flight), queued in Redis, analysed by --workers worker processes
  (``edgectl analysis-worker``), detections back: images/s from the first post to the last answer;
- a cached answer's latency at the gateway (p50 / p90 of 200 sequential requests);
- throttling: one caller posting as fast as it can for 2 s against a bucket of --rate tokens/s
  (capacity: one second's worth): accepted requests against capacity + rate x elapsed.

    .venv/bin/python -m bench.analysis.run --model yolov8n.yaml --images 48 --imgsz 640 --batch 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import tempfile
import time
import uuid
from pathlib import Path

import redis

from shared import migrations
from tests.helpers.database import create_database, drop_database
from tests.helpers.env import OPERATOR, service_env, settings_for
from tests.helpers.processes import Proc, edgectl

REDIS_URL = "redis://127.0.0.1:6379/0"


def assets() -> list[bytes]:
    import ultralytics

    root = Path(ultralytics.__file__).parent / "assets"
    return [(root / "bus.jpg").read_bytes(), (root / "zidane.jpg").read_bytes()]


def variant(jpeg: bytes, tag: str) -> bytes:
    """A distinct hash for the same picture (a JPEG comment), so that nothing is a cache hit."""
    comment = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def images_per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def baseline_one_predict_per_frame(args: argparse.Namespace, blobs: list[bytes]) -> float:
    import cv2
    import numpy as np

    from edge_ai.yolo.model import Detector, model_spec

    detector = Detector(model_spec(args.model, imgsz=args.imgsz, device=args.device))
    for blob in blobs[:2]:  # warm-up, once per picture (each has its own input shape)
        detector.detect(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR))
    started = time.perf_counter()
    for blob in blobs:
        detector.detect(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR))
    return images_per_s(len(blobs), time.perf_counter() - started)


def ultralytics_batched(args: argparse.Namespace, blobs: list[bytes]) -> float:
    import cv2
    import numpy as np

    from detectors import ModelSpec
    from detectors.ultralytics_backend import UltralyticsDetector

    model = UltralyticsDetector(ModelSpec(args.model, imgsz=args.imgsz, device=args.device)).model
    frames = [
        cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in blobs[: args.batch]
    ]
    model.predict(frames, imgsz=args.imgsz, device=args.device, batch=args.batch, verbose=False)
    started = time.perf_counter()
    done = 0
    for i in range(0, len(blobs), args.batch):
        chunk = [
            cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
            for b in blobs[i : i + args.batch]
        ]
        model.predict(chunk, imgsz=args.imgsz, device=args.device, batch=args.batch, verbose=False)
        done += len(chunk)
    return images_per_s(done, time.perf_counter() - started)


def forward_ceiling(args: argparse.Namespace, blobs: list[bytes]) -> float:
    """The network alone on these images' input tensors (decoded and letterboxed beforehand, in
    batches of --batch): forward passes only (bench.analysis.models.forward_only)."""
    from bench.analysis.models import forward_only

    return forward_only(args.model, blobs, args.imgsz, args.batch, args.device, args.half)


def start_workers(args: argparse.Namespace, db: str, prefix: str, tmp: Path) -> list[Proc]:
    env = service_env(db, EDGE_REDIS_URL=REDIS_URL, ANALYSIS_KEY_PREFIX=prefix)
    procs = []
    for i in range(args.workers):
        cmd = [
            "analysis-worker",
            "--model",
            args.model,
            "--device",
            args.device,
            "--imgsz",
            str(args.imgsz),
            "--batch-size",
            str(args.batch),
            "--batch-wait-ms",
            str(args.batch_wait_ms),
        ]
        if args.half:
            cmd.append("--half")
        procs.append(Proc(edgectl(*cmd), env=env, log_path=tmp / f"worker-{i}.log"))
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if len(client.xinfo_consumers(f"{prefix}:jobs", "workers")) >= args.workers:
                return procs
        except redis.ResponseError:
            pass
        for p in procs:
            if not p.alive():
                raise RuntimeError(p.log_text()[-3000:])
        time.sleep(0.2)
    raise TimeoutError("workers did not start")


async def through_the_queue(
    args: argparse.Namespace, db: str, prefix: str, blobs: list[bytes]
) -> dict[str, float]:
    from services.analysis.app import create_app
    from tests.conftest import running_app

    settings = settings_for(
        "analysis",
        db,
        redis_url=REDIS_URL,
        key_prefix=prefix,
        model=args.model,
        rate_per_s=0.0,
        sync_timeout_s=600.0,
        queue_max_jobs=100_000,
    )
    app = create_app(settings)
    figures: dict[str, float] = {}
    async with running_app(app) as client:
        limit = asyncio.Semaphore(args.batch * args.workers * 2)

        async def post(blob: bytes) -> dict:
            async with limit:
                r = await client.post("/analyze", content=blob, headers=OPERATOR)
                r.raise_for_status()
                return r.json()

        await asyncio.gather(
            *(
                post(variant(blobs[i % 2], f"warm{i}"))
                for i in range(max(2, args.batch * args.workers))
            )
        )
        started = time.perf_counter()
        answers = await asyncio.gather(*(post(b) for b in blobs))
        elapsed = time.perf_counter() - started
        assert all(a["status"] == "done" for a in answers)
        figures["end_to_end"] = images_per_s(len(blobs), elapsed)
        figures["mean_batch"] = statistics.mean(a["batch_size"] for a in answers)
        stages = ("queue_ms", "decode_ms", "preprocess_ms", "inference_ms", "nms_ms")
        for stage in stages:
            figures[stage] = statistics.median(a["timings"][stage] for a in answers)
        cached = []
        for _ in range(200):
            t0 = time.perf_counter()
            r = await client.post("/analyze", content=blobs[0], headers=OPERATOR)
            cached.append((time.perf_counter() - t0) * 1000)
            assert r.json()["cached"] is True
        cached.sort()
        figures["cached_p50_ms"] = cached[len(cached) // 2]
        figures["cached_p90_ms"] = cached[int(len(cached) * 0.9)]
    throttled = create_app(
        settings_for(
            "analysis",
            db,
            redis_url=REDIS_URL,
            key_prefix=prefix,
            model=args.model,
            rate_per_s=args.rate,
            rate_capacity=args.rate,
        )
    )
    async with running_app(throttled) as client:
        # The bucket starts full at the first take: the clock starts when that one is back.
        accepted = int(
            (await client.post("/analyze", content=blobs[0], headers=OPERATOR)).status_code == 200
        )
        started = time.perf_counter()
        while time.perf_counter() - started < 2.0:
            r = await client.post("/analyze", content=blobs[0], headers=OPERATOR)
            accepted += r.status_code == 200
        elapsed = time.perf_counter() - started
        figures["throttle_accepted"] = accepted
        figures["throttle_expected"] = args.rate + args.rate * elapsed
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="yolov8n.yaml")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens/s of the throttling check")
    parser.add_argument("--skip-ultralytics-batched", action="store_true")
    args = parser.parse_args()

    sources = assets()
    blobs = [variant(sources[i % 2], f"bench-{uuid.uuid4().hex}-{i}") for i in range(args.images)]
    print(
        f"model {args.model}, {args.images} images (bus.jpg / zidane.jpg), imgsz {args.imgsz}, "
        f"batch {args.batch}, {args.workers} worker(s) on {args.device}",
        flush=True,
    )
    baseline = baseline_one_predict_per_frame(args, blobs)
    print(f"baseline (one predict per frame) ... {baseline:.1f} images/s", flush=True)
    batched = 0.0 if args.skip_ultralytics_batched else ultralytics_batched(args, blobs)
    if batched:
        print(f"ultralytics batched predict ...... {batched:.1f} images/s", flush=True)
    ceiling = forward_ceiling(args, blobs)
    print(f"forward only (ceiling) ........... {ceiling:.1f} images/s", flush=True)

    name = f"bench_analysis_{uuid.uuid4().hex[:8]}"
    prefix = f"bench:{name}"
    db = asyncio.run(create_database(name))
    procs: list[Proc] = []
    try:
        migrations.upgrade("services.analysis", db)
        with tempfile.TemporaryDirectory() as tmp:
            procs = start_workers(args, db, prefix, Path(tmp))
            figures = asyncio.run(through_the_queue(args, db, prefix, blobs))
            for p in procs:
                p.stop()
    finally:
        for p in procs:
            p.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        asyncio.run(drop_database(name))

    e2e = figures["end_to_end"]
    print()
    print("| path | images/s |")
    print("| --- | ---: |")
    print(f"| baseline: one `predict` per frame | {baseline:.1f} |")
    if batched:
        print(f"| ultralytics batched `predict` (batch {args.batch}) | {batched:.1f} |")
    print(f"| forward passes only (batches of {args.batch}), the ceiling | {ceiling:.1f} |")
    print(f"| **end to end through the queue** | **{e2e:.1f}** |")
    print()
    print(
        f"end to end = {100 * e2e / ceiling:.0f} % of the ceiling, "
        f"{e2e / baseline:.1f}x the baseline; "
        f"mean batch {figures['mean_batch']:.1f}"
    )
    print(
        "median per image (ms): "
        + ", ".join(
            f"{k[:-3]} {figures[k]:.1f}"
            for k in ("queue_ms", "decode_ms", "preprocess_ms", "inference_ms", "nms_ms")
        )
        + " (decode to NMS: per batch)"
    )
    print(
        f"cached answer at the gateway: p50 {figures['cached_p50_ms']:.2f} ms, "
        f"p90 {figures['cached_p90_ms']:.2f} ms"
    )
    accepted, expected = figures["throttle_accepted"], figures["throttle_expected"]
    print(
        f"throttling at {args.rate:g}/s: {accepted:.0f} accepted, {expected:.1f} expected "
        f"({100 * (accepted - expected) / expected:+.1f} %)"
    )


if __name__ == "__main__":
    main()
