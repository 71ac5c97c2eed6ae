"""YOLO worker: frames -> ultralytics detections -> one summary a second on ``POST /detections``.

Frames come from ``--source`` (RTSP URL, video file, image folder looped). Detection runs at most
``--rate`` frames a second, in a worker thread so the summaries keep their one-second beat when a
frame takes long. A frame with detections between ``--min-conf`` and ``--conf`` (default 0.5) is
"below the threshold"; when routing says so, it is sent as JPEG + metadata to the analysis server
(at most ``--max-uploads`` frames a second), buffered on disk like the VMS records.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_ai.common.config import ConfigError, EdgeConfig, load_config
from edge_ai.common.options import base_parser, env_default
from edge_ai.common.runtime import Stop, every, run_program, start_api
from edge_ai.common.timefmt import utc_stamp
from edge_ai.common.vms_client import AnalysisClient, VmsClient
from edge_ai.yolo.routing import Routing
from edge_ai.yolo.summary import Window, summary_record

log = logging.getLogger("edge_ai.yolo")

PROGRAM = "yolo"


@dataclass
class YoloOptions:
    config: EdgeConfig
    node_id: str
    source: str
    model: str
    model_name: str
    model_version: str
    rate: float
    conf: float
    min_conf: float
    imgsz: int
    device: str | None
    max_detections: int
    max_uploads: int
    analysis_buffer: int
    routing_file: Path | None
    names: str | None
    interval: float


def parse_options(argv: list[str] | None = None) -> YoloOptions:
    parser = base_parser("yolo", "YOLO worker: detections on camera frames, a summary a second to the VMS.")
    parser.add_argument("--source", default=env_default("YOLO_SOURCE"), help="RTSP URL, video file or image folder ($YOLO_SOURCE)")
    parser.add_argument("--model", default=env_default("YOLO_MODEL", "yolov8n.yaml"),
                        help="weights (.pt, .onnx) or architecture (.yaml, random "
                            "weights) ($YOLO_MODEL, default yolov8n.yaml)")
    parser.add_argument("--model-name", default=env_default("YOLO_MODEL_NAME"), help="name posted as model (default: the file's stem)")
    parser.add_argument("--model-version", default=env_default("YOLO_MODEL_VERSION", "01"), help="posted as model_version ($YOLO_MODEL_VERSION, default 01)")
    parser.add_argument("--rate", type=float, default=float(env_default("YOLO_RATE", "5")), help="frames a second at most ($YOLO_RATE, default 5)")
    parser.add_argument("--conf", type=float, default=float(env_default("YOLO_CONF_THRESHOLD", "0.5")),
                        help="confidence threshold ($YOLO_CONF_THRESHOLD, default 0.5)")
    parser.add_argument("--min-conf", type=float, default=float(env_default("YOLO_MIN_CONF", "0.1")),
                        help="detections below this are ignored altogether ($YOLO_MIN_CONF, default 0.1)")
    parser.add_argument("--imgsz", type=int, default=int(env_default("YOLO_IMGSZ", "640")), help="inference size ($YOLO_IMGSZ, default 640)")
    parser.add_argument("--device", default=env_default("YOLO_DEVICE"), help="cpu, 0, cuda:0 ($YOLO_DEVICE, default: ultralytics picks)")
    parser.add_argument("--max-detections", type=int, default=int(env_default("YOLO_MAX_DETECTIONS", "100")),
                        help="detections listed per summary ($YOLO_MAX_DETECTIONS, default 100)")
    parser.add_argument("--max-uploads", type=int, default=int(env_default("YOLO_MAX_UPLOADS_PER_SECOND", "1")),
                        help="low-confidence frames sent up a second at most "
                            "($YOLO_MAX_UPLOADS_PER_SECOND, default 1)")
    parser.add_argument("--analysis-buffer", type=int, default=int(env_default("YOLO_ANALYSIS_BUFFER_FRAMES", "100")),
                        help="frames kept on disk for the analysis server "
                            "($YOLO_ANALYSIS_BUFFER_FRAMES, default 100)")
    parser.add_argument("--names", default=env_default("YOLO_NAMES"),
                        help="YAML with the class names, for a model without "
                            "them ($YOLO_NAMES; default COCO for 80 classes)")
    parser.add_argument("--routing-file", default=env_default("YOLO_ROUTING_FILE"), help="JSON routing file, re-read on change ($YOLO_ROUTING_FILE)")
    args = parser.parse_args(argv)
    if not args.source:
        raise ConfigError("--source (or $YOLO_SOURCE) is required: an RTSP URL, a video file or an image folder")
    if args.rate <= 0 or args.interval <= 0:
        raise ConfigError("--rate and --interval must be positive")
    if not 0 < args.conf <= 1 or not 0 < args.min_conf <= args.conf:
        raise ConfigError("--conf must be in (0, 1] and --min-conf in (0, --conf]")
    if args.imgsz < 32 or args.max_detections < 0 or args.max_uploads < 0 or args.analysis_buffer < 1:
        raise ConfigError("--imgsz at least 32; --max-detections, --max-uploads "
            "not negative; --analysis-buffer at least 1")
    config = load_config(args.config)
    if args.api_port is not None:
        config = replace(config, api_port=args.api_port)
    from edge_ai.yolo.model import check_model_spec

    check_model_spec(args.model)
    return YoloOptions(
        config=config,
        node_id=config.require_node_id(),
        source=args.source,
        model=args.model,
        model_name=args.model_name or Path(args.model).stem,
        model_version=args.model_version,
        rate=args.rate,
        conf=args.conf,
        min_conf=args.min_conf,
        imgsz=args.imgsz,
        device=args.device,
        max_detections=args.max_detections,
        max_uploads=args.max_uploads,
        analysis_buffer=args.analysis_buffer,
        routing_file=Path(args.routing_file) if args.routing_file else None,
        names=args.names,
        interval=args.interval,
    )


def _encode_jpeg(frame: Any) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class Worker:
    def __init__(self, options: YoloOptions, detector: Any, vms: VmsClient, analysis: AnalysisClient, routing: Routing):
        self.options = options
        self.detector = detector
        self.vms = vms
        self.analysis = analysis
        self.routing = routing
        self.window = Window(started=time.time())
        self.source: Any = None
        self.frame_index = 0
        self.uploads_this_second = 0
        self._source_failures = 0
        self._source_retry_at = 0.0

    async def step(self) -> None:
        """One frame: read, detect, account, maybe send up."""
        from edge_ai.common.frames import FrameUnavailable, describe, open_source

        if time.monotonic() < self._source_retry_at:
            return
        try:
            if self.source is None:
                self.source = await asyncio.to_thread(open_source, self.options.source)
                log.info("reading frames from %s", describe(self.options.source))
            frame = await asyncio.to_thread(self.source.read)
        except FrameUnavailable as exc:
            self._source_failures += 1
            delay = min(30.0, 2.0 ** min(self._source_failures, 5))
            self._source_retry_at = time.monotonic() + delay
            log.warning("no frame (%s); retrying in %.0fs", exc, delay)
            if self.source is not None:
                await asyncio.to_thread(self.source.close)
                self.source = None
            return
        self._source_failures = 0
        detections, elapsed_ms = await asyncio.to_thread(self.detector.detect, frame)
        self.frame_index += 1
        above = [d for d in detections if d.confidence >= self.options.conf]
        below = [d for d in detections if d.confidence < self.options.conf]
        self.window.add(above, len(below), elapsed_ms)
        if below and self.routing.active and self.uploads_this_second < self.options.max_uploads:
            self.uploads_this_second += 1
            self.window.frames_sent_up += 1
            jpeg = await asyncio.to_thread(_encode_jpeg, frame)
            self.analysis.submit(jpeg, self._frame_metadata(detections, frame))

    def _frame_metadata(self, detections: list[Any], frame: Any) -> dict[str, Any]:
        height, width = frame.shape[:2]
        return {
            "nid": self.options.node_id,
            "ts": utc_stamp(datetime.now(UTC)),
            "reason": "low_confidence",
            "model": self.options.model_name,
            "model_version": self.options.model_version,
            "conf_threshold": self.options.conf,
            "frame_index": self.frame_index,
            "width": width,
            "height": height,
            "detections": [d.as_json() for d in detections[: self.options.max_detections]],
        }

    def summarise(self) -> None:
        now = time.time()
        window, self.window = self.window, Window(started=now)
        self.uploads_this_second = 0
        self.routing.refresh_from_file()
        self.vms.submit(
            "detections",
            summary_record(
                window,
                ended=now,
                node_id=self.options.node_id,
                model=self.options.model_name,
                model_version=self.options.model_version,
                conf_threshold=self.options.conf,
                max_detections=self.options.max_detections,
            ),
        )

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


async def run(options: YoloOptions, stop: Stop) -> None:
    from edge_ai.yolo.model import Detector, prepare_offline_environment

    config = options.config
    prepare_offline_environment(config.buffer_dir / "ultralytics")
    log.info("loading model %s", options.model)
    detector = await asyncio.to_thread(
        Detector, options.model, imgsz=options.imgsz, device=options.device, min_conf=options.min_conf, names_file=options.names
    )
    routing = Routing(route_low_confidence=config.route_low_confidence, analysis_url=config.analysis_url, routing_file=options.routing_file)
    routing.refresh_from_file()
    vms = VmsClient(config, program=f"yolo-{options.node_id}")
    analysis = AnalysisClient(config, program=f"yolo-{options.node_id}", url=lambda: routing.analysis_url, max_frames=options.analysis_buffer)
    vms.start()
    analysis.start()
    worker = Worker(options, detector, vms, analysis, routing)

    def put_routing(body: Any) -> tuple[int, Any]:
        problem = routing.apply(body)
        if problem:
            return 400, {"detail": problem, "field": problem.split(":", 1)[0]}
        log.info("routing set through the API: %s", routing.as_json())
        return 200, routing.as_json()

    api = start_api(config, PROGRAM, vms, lambda: {"routing": routing.as_json(), "analysis": analysis.sender.stats(), "model": options.model_name})
    if api is not None:
        api.route("GET", "/routing", lambda _b: (200, routing.as_json()))
        api.route("PUT", "/routing", put_routing)
        await api.start()
    log.info("YOLO worker for node %s: model %s v%s, %g fps max, posting to %s",
             options.node_id, options.model_name, options.model_version, options.rate, config.vms_url)
    inference = asyncio.create_task(every(1.0 / options.rate, stop, worker.step))
    try:
        await every(options.interval, stop, worker.summarise)
    finally:
        stop.event.set()
        await inference
        worker.close()
        if api is not None:
            await api.close()
        await analysis.close()
        await vms.close()
        log.info("YOLO worker stopped")


def main(argv: list[str] | None = None) -> int:
    return run_program(PROGRAM, lambda: parse_options(argv), run)
