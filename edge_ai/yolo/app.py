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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_ai.common.config import ConfigError, EdgeConfig, load_config
from edge_ai.common.options import ProgramSettings
from edge_ai.common.runtime import Stop, every, run_program, start_api
from edge_ai.common.timefmt import utc_stamp
from edge_ai.common.vms_client import AnalysisClient, VmsClient
from edge_ai.yolo.clips import ClipRecorder, ClipUploader
from edge_ai.yolo.helping import Helping, LiveSecrets
from edge_ai.yolo.live_view import LiveSender, ViewRequest
from edge_ai.yolo.routing import Routing
from edge_ai.yolo.summary import Window, summary_record
from edge_common.compat import to_thread
from edge_common.settings import load_settings, setting
from edge_common.vocabulary import AnalysisRoute, Param

log = logging.getLogger("edge_ai.yolo")

PROGRAM = "yolo"
LIVE_CHECK_S = 0.2  # how often the live file is looked at (a stat)


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
    imgsz: int | None  # None: the model's own input size (ONNX), else 640
    device: str | None
    max_detections: int
    max_uploads: int
    analysis_buffer: int
    routing_file: Path | None
    names: str | None
    interval: float
    helped_mode: str = "rate"
    helped_rate: float = 1.0
    focus_rate: float = 10.0
    focus_conf: float = 0.35
    focus_max_uploads: int = 2
    analysis_for: str | None = None
    failure_report_s: float = 3.0
    live_secrets_file: Path | None = None
    view_file: Path | None = None
    clip_classes: tuple[str, ...] = ("person", "car")
    clip_pre_s: float = 5.0
    clip_post_s: float = 5.0
    clip_budget_bps: int = 128_000
    clip_demo_every_s: float = 0.0
    backend: str | None = None
    layout: str | None = None


@dataclass(frozen=True)
class Profile:
    """How hard the worker works this second, from its options and the live routing."""

    name: str  # normal | focus | helped | server
    rate: float  # frames a second; 0: local analysis paused
    conf: float
    max_uploads: int
    detect: bool = True  # run the model on the frames
    upload_all: bool = False  # every frame goes up (no helper: the server analyses), bounded


@dataclass
class YoloSettings(ProgramSettings):
    """The worker's settings: the camera, the detector, the live settings, event clips."""

    source: str | None = setting(
        None, env="YOLO_SOURCE", help="RTSP URL, video file or image folder"
    )
    # The detector: a model file and how to read it (detectors.ModelSpec).
    manifest: str | None = setting(
        None,
        env="YOLO_MANIFEST",
        help="package manifest whose detector section gives the model, backend, layout, imgsz "
        "and labels (default aipackage.yaml when in the working directory); the options below "
        "override it",
    )
    model: str | None = setting(
        None,
        env="YOLO_MODEL",
        help="ONNX model (.onnx), ultralytics weights (.pt) or architecture (.yaml, random "
        "weights; .pt and .yaml need the edge extra) (default the demo ONNX model: random "
        "weights)",
    )
    backend: str | None = setting(
        None,
        env="YOLO_BACKEND",
        choices=("onnxruntime", "ultralytics"),
        help="default from the model's suffix",
    )
    layout: str | None = setting(
        None,
        env="YOLO_LAYOUT",
        choices=("yolov8", "yolox", "detr"),
        help="output layout of an ONNX model: yolov8 (YOLOv8/YOLO11), yolox, detr (RT-DETR, "
        "D-FINE, DEIM, RF-DETR) (default yolov8)",
    )
    names: str | None = setting(
        None,
        env="YOLO_NAMES",
        help="class names: a YAML file with names, a text file with one a line, or coco "
        "(default COCO for 80 classes)",
    )
    model_name: str | None = setting(
        None, env="YOLO_MODEL_NAME", help="name posted as model (default: the file's stem)"
    )
    model_version: str = setting("01", env="YOLO_MODEL_VERSION", help="posted as model_version")
    rate: float = setting(5.0, env="YOLO_RATE", help="frames a second at most")
    conf: float = setting(0.5, env="YOLO_CONF_THRESHOLD", help="confidence threshold")
    min_conf: float = setting(
        0.1, env="YOLO_MIN_CONF", help="detections below this are ignored altogether"
    )
    imgsz: int | None = setting(
        None,
        env="YOLO_IMGSZ",
        kind=int,
        help="inference size (default the manifest's, else the ONNX model's input size, else "
        "640; 0: the default)",
    )
    device: str | None = setting(
        None,
        env="YOLO_DEVICE",
        help="cpu, cuda, cuda:0, tensorrt (ONNX), 0 (default: cpu for ONNX, ultralytics picks "
        "for .pt)",
    )
    max_detections: int = setting(
        100, env="YOLO_MAX_DETECTIONS", help="detections listed per summary"
    )
    max_uploads: int = setting(
        1,
        env="YOLO_MAX_UPLOADS_PER_SECOND",
        help="low-confidence frames sent up a second at most",
    )
    analysis_buffer: int = setting(
        100,
        env="YOLO_ANALYSIS_BUFFER_FRAMES",
        help="frames kept on disk for the analysis server",
    )
    # Where the optimizer's live settings come from, and what the worker does with them.
    routing_file: str | None = setting(
        None,
        env=("YOLO_ROUTING_FILE", "EDGE_LIVE_FILE"),
        help="JSON routing file, re-read on change (the agent writes $EDGE_LIVE_FILE)",
    )
    live_secrets_file: str | None = setting(
        None,
        env="EDGE_LIVE_SECRETS_FILE",
        help="JSON file (0600) with the camera URLs of the edges this worker helps, re-read on "
        "change (written by the agent, a mounted Secret on Kubernetes)",
    )
    view_file: str | None = setting(
        None,
        env="EDGE_VIEW_FILE",
        help="JSON file with the edge's live-view request, re-read on change: while it holds, "
        "annotated frames go to the VMS (written by the agent)",
    )
    helped_mode: str = setting(
        "rate",
        env="YOLO_HELPED_MODE",
        choices=("pause", "rate"),
        help="while a helper or the server analyses this camera: pause local analysis or lower "
        "its rate",
    )
    helped_rate: float = setting(
        1.0, env="YOLO_HELPED_RATE", help="frames a second while helped in rate mode"
    )
    focus_rate: float = setting(
        0.0, env="YOLO_FOCUS_RATE", help="frames a second in focus mode (0: twice --rate)"
    )
    focus_conf: float = setting(
        0.0,
        env="YOLO_FOCUS_CONF",
        help="confidence threshold in focus mode (0: --conf less 0.15)",
    )
    focus_max_uploads: int = setting(
        0,
        env="YOLO_FOCUS_MAX_UPLOADS",
        help="frames sent up a second in focus mode (0: twice --max-uploads)",
    )
    failure_report_s: float = setting(
        3.0,
        env="YOLO_FAILURE_REPORT_S",
        help="a camera that gives no frame, or uploads the analysis service refuses (429, 5xx, "
        "unreachable), for this long are reported in the summaries (source_unavailable, "
        "analysis_unavailable) for the optimizer to fall back",
    )
    analysis_for: str | None = setting(
        None,
        env=("YOLO_ANALYSIS_FOR", Param.ANALYSIS_FOR),
        help="helper mode: analyse another node's camera and post under its nid (or the "
        "optimizer's analysis_for param)",
    )
    # Event clips (edge_ai.yolo.clips).
    clip_classes: str = setting(
        "person,car",
        env="YOLO_CLIP_CLASSES",
        help="a detection of one of these classes (comma list, at the working threshold) makes "
        "a clip (the classes that raise focus); empty: no clip",
    )
    clip_pre_s: float = setting(
        5.0, env="YOLO_CLIP_PRE_S", help="seconds before the event in a clip"
    )
    clip_post_s: float = setting(
        5.0, env="YOLO_CLIP_POST_S", help="seconds after the event in a clip"
    )
    clip_budget_bps: int = setting(
        128000,
        env="YOLO_CLIP_BUDGET_BPS",
        help="bytes a second clip uploads use at most, after telemetry",
    )
    clip_demo_every_s: float = setting(
        0.0,
        env="YOLO_CLIP_DEMO_EVERY_S",
        help="a demo event on purpose this often (class 'demo'; `edgectl up` sets it for "
        "edge-01) (0: never)",
    )


def _check_live_options(args: YoloSettings) -> None:
    if args.failure_report_s <= 0:
        raise ConfigError("--failure-report-s must be positive")
    if args.helped_rate <= 0 or args.focus_rate < 0 or args.focus_max_uploads < 0:
        raise ConfigError("--helped-rate positive; --focus-rate, --focus-max-uploads not negative")
    if not 0 <= args.focus_conf <= 1:
        raise ConfigError("--focus-conf in [0, 1]")
    if args.clip_pre_s < 0 or args.clip_post_s < 0 or args.clip_demo_every_s < 0:
        raise ConfigError("--clip-pre-s, --clip-post-s, --clip-demo-every-s not negative")
    if args.clip_budget_bps < 1000:
        raise ConfigError("--clip-budget-bps at least 1000")


def _model_from_manifest(args: YoloSettings) -> str:
    """Fills what the options left unset from the manifest's detector section; the model."""
    from detectors import DetectorError
    from detectors.spec import section_from_manifest
    from edge_ai.yolo.model import DEFAULT_MODEL

    manifest = args.manifest or ("aipackage.yaml" if Path("aipackage.yaml").is_file() else None)
    section = {}
    if manifest:
        try:
            section = section_from_manifest(Path(manifest)) or {}
        except DetectorError as exc:
            raise ConfigError(exc.message) from None
    args.model = args.model or section.get("model") or DEFAULT_MODEL
    args.backend = args.backend or section.get("backend")
    args.layout = args.layout or section.get("layout")
    labels = section.get("labels")
    args.names = args.names or (labels if isinstance(labels, str) else None)
    if args.imgsz is None and section.get("imgsz"):
        args.imgsz = int(section["imgsz"])
    return args.model


def parse_options(argv: list[str] | None = None) -> YoloOptions:
    args = load_settings(
        YoloSettings,
        argv,
        prog="yolo",
        description="YOLO worker: detections on camera frames, a summary a second to the VMS.",
    )
    args.imgsz = args.imgsz or None  # 0: the default
    if not args.source:
        raise ConfigError(
            "--source (or $YOLO_SOURCE) is required: an RTSP URL, a video file or an image folder"
        )
    if args.rate <= 0 or args.interval <= 0:
        raise ConfigError("--rate and --interval must be positive")
    if not 0 < args.conf <= 1 or not 0 < args.min_conf <= args.conf:
        raise ConfigError("--conf must be in (0, 1] and --min-conf in (0, --conf]")
    _check_live_options(args)
    if (
        (args.imgsz is not None and args.imgsz < 32)
        or args.max_detections < 0
        or args.max_uploads < 0
        or args.analysis_buffer < 1
    ):
        raise ConfigError(
            "--imgsz at least 32; --max-detections, --max-uploads "
            "not negative; --analysis-buffer at least 1"
        )
    config = load_config(args.config)
    if args.api_port is not None:
        config = replace(config, api_port=args.api_port)
    model = _model_from_manifest(args)
    from edge_ai.yolo.model import model_spec

    model_spec(model, backend=args.backend, layout=args.layout, labels=args.names)
    return YoloOptions(
        config=config,
        node_id=config.require_node_id(),
        source=args.source,
        model=model,
        model_name=args.model_name or Path(model).stem,
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
        backend=args.backend,
        layout=args.layout,
        interval=args.interval,
        helped_mode=args.helped_mode,
        helped_rate=args.helped_rate,
        focus_rate=args.focus_rate or args.rate * 2,
        focus_conf=args.focus_conf or max(args.min_conf, round(args.conf - 0.15, 3)),
        focus_max_uploads=args.focus_max_uploads or max(1, args.max_uploads) * 2,
        analysis_for=args.analysis_for or None,
        failure_report_s=args.failure_report_s,
        live_secrets_file=Path(args.live_secrets_file) if args.live_secrets_file else None,
        view_file=Path(args.view_file) if args.view_file else None,
        clip_classes=tuple(c.strip() for c in args.clip_classes.split(",") if c.strip()),
        clip_pre_s=args.clip_pre_s,
        clip_post_s=args.clip_post_s,
        clip_budget_bps=args.clip_budget_bps,
        clip_demo_every_s=args.clip_demo_every_s,
    )


def _encode_jpeg(frame: Any) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class Worker:
    def __init__(
        self,
        options: YoloOptions,
        detector: Any,
        vms: VmsClient,
        analysis: AnalysisClient,
        routing: Routing,
        helping: Helping | None = None,
        clips: ClipRecorder | None = None,
    ):
        self.options = options
        self.clips = clips
        self._last_demo = time.monotonic()
        self.helping = helping
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
        self._source_failing_since: float | None = None
        self._source_problem = ""
        # The latest frame read and its detections (the live view draws them).
        self.latest_frame: Any = None
        self.latest_detections: list[Any] = []
        self.profile = self.current_profile()
        # Set when the profile changes: the frame loop re-times at once.
        self.changed = asyncio.Event()

    @property
    def posts_for(self) -> str:
        """The nid the summaries are posted under: the helped node's in helper mode."""
        return self.options.analysis_for or self.options.node_id

    def current_profile(self) -> Profile:
        o, r = self.options, self.routing
        if r.analysis_route is not None:  # AnalysisRoute.EDGE or .SERVER: moved away
            paused = o.helped_mode == "pause"
            rate = 0.0 if paused else min(o.helped_rate, o.rate)
            if r.analysis_route == AnalysisRoute.SERVER:
                # No helper: frames go to the analysis server at a bounded rate; local work as
                # when helped.
                read_rate = rate or float(max(o.max_uploads, 1))
                return Profile(
                    "server", read_rate, o.conf, o.max_uploads, detect=not paused, upload_all=True
                )
            return Profile("helped", rate, o.conf, o.max_uploads)
        if r.focused():
            f = r.focus_overrides
            return Profile(
                "focus",
                f.get(Param.FOCUS_RATE, o.focus_rate),
                f.get(Param.FOCUS_CONF, o.focus_conf),
                int(f.get(Param.FOCUS_MAX_UPLOADS, o.focus_max_uploads)),
            )
        return Profile("normal", o.rate, o.conf, o.max_uploads)

    def update_profile(self) -> None:
        new = self.current_profile()
        if new != self.profile:
            log.info(
                "profile %s -> %s: %.3g fps, threshold %.2f, %d uploads/s%s (routing %s)",
                self.profile.name,
                new.name,
                new.rate,
                new.conf,
                new.max_uploads,
                "" if new.detect else ", local analysis paused",
                self.routing.as_json(),
            )
            self.profile = new
            self.changed.set()

    async def step(self) -> None:
        """One frame: read, detect, account, maybe send up."""
        from edge_ai.common.frames import FrameUnavailable, describe, open_source

        if time.monotonic() < self._source_retry_at:
            return
        try:
            if self.source is None:
                self.source = await to_thread(open_source, self.options.source)
                log.info("reading frames from %s", describe(self.options.source))
            frame = await to_thread(self.source.read)
        except FrameUnavailable as exc:
            if self._source_failures == 0:
                self._source_failing_since = time.monotonic()
            self._source_problem = str(exc)  # FrameUnavailable never carries credentials
            self._source_failures += 1
            delay = min(30.0, 2.0 ** min(self._source_failures, 5))
            self._source_retry_at = time.monotonic() + delay
            log.warning("no frame (%s); retrying in %.0fs", exc, delay)
            if self.source is not None:
                await to_thread(self.source.close)
                self.source = None
            return
        self._source_failures = 0
        self._source_failing_since = None
        self._source_problem = ""
        self.latest_frame = frame
        profile = self.profile
        self.frame_index += 1
        detections: list[Any] = []
        if profile.detect:
            detections, elapsed_ms = await to_thread(self.detector.detect, frame)
            above = [d for d in detections if d.confidence >= profile.conf]
            below = [d for d in detections if d.confidence < profile.conf]
            self.latest_detections = above
            self.window.add(above, len(below), elapsed_ms)
        else:
            below = []
            self.window.frames_skipped += 1
        if self.clips is not None:
            kept = self.latest_detections if profile.detect else []
            await to_thread(self.clips.add, time.time(), frame, kept)
        if self.uploads_this_second >= profile.max_uploads:
            return
        if profile.upload_all and self.routing.target_url:
            reason = "overload"
        elif below and self.routing.active:
            reason = "low_confidence"
        else:
            return
        self.uploads_this_second += 1
        self.window.frames_sent_up += 1
        jpeg = await to_thread(_encode_jpeg, frame)
        self.analysis.submit(jpeg, self._frame_metadata(detections, frame, reason, profile.conf))

    def latest(self) -> tuple[Any, list[Any], str]:
        """For the live view: the latest frame, its detections, the camera's problem (if any)."""
        return self.latest_frame, self.latest_detections, self._source_problem

    def _frame_metadata(
        self, detections: list[Any], frame: Any, reason: str, conf: float
    ) -> dict[str, Any]:
        height, width = frame.shape[:2]
        return {
            "nid": self.posts_for,
            "ts": utc_stamp(datetime.now(timezone.utc)),
            "camera_time": utc_stamp(datetime.now(timezone.utc)),
            "reason": reason,
            "model": self.options.model_name,
            "model_version": self.options.model_version,
            "conf_threshold": conf,
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
        if self.helping is not None:
            self.helping.sync(self.routing.help_for)
            self.helping.summarise(now)
        record = summary_record(
            window,
            ended=now,
            node_id=self.posts_for,
            model=self.options.model_name,
            model_version=self.options.model_version,
            conf_threshold=self.profile.conf,
            max_detections=self.options.max_detections,
        )
        record["profile"] = self.profile.name
        if self.options.analysis_for:
            record["analysed_by"] = self.options.node_id
        record.update(self.failures())
        self.vms.submit("detections", record)
        self.update_profile()
        every_s = self.options.clip_demo_every_s
        if self.clips is not None and every_s and time.monotonic() - self._last_demo >= every_s:
            self._last_demo = time.monotonic()
            self.clips.demo()

    def failures(self) -> dict[str, str]:
        """What has kept failing for ``failure_report_s``: the camera (no frame), the uploads (the
        analysis service refusing or unreachable while frames should go up). The optimizer reads
        them from the VMS's node state and falls back, with a logged decision."""
        out: dict[str, str] = {}
        now, after = time.monotonic(), self.options.failure_report_s
        since = self._source_failing_since
        if since is not None and now - since >= after:
            out["source_unavailable"] = self._source_problem[:300]
        sender = self.analysis.sender
        uploading = self.routing.active or self.profile.upload_all
        failing = sender.failing_since
        if uploading and failing is not None and now - failing >= after:
            out["analysis_unavailable"] = (sender.last_error or "uploads failing")[:300]
        return out

    def refresh(self) -> None:
        """The live file (and, while helping, the live secrets file): a change is in effect at
        once: the profile, and the helped cameras started or stopped."""
        self.routing.refresh_from_file()
        self.update_profile()
        if self.helping is not None:
            self.helping.sync(self.routing.help_for)

    def watch(self) -> None:
        """A few times a second (one stat each)."""
        self.refresh()

    async def frames(self, stop: Stop) -> None:
        """Frames at the profile's rate; a changed profile re-times the loop at once, a paused one
        waits for the next change."""
        while not stop.event.is_set():
            rate = self.profile.rate
            self.changed.clear()
            if rate <= 0:
                waiter = asyncio.create_task(self.changed.wait())
                stopper = asyncio.create_task(stop.event.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            period = 1.0 / rate
            now = time.time()
            if await stop.wait((int(now / period) + 1) * period - now):
                return
            await self.step()

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


async def run(options: YoloOptions, stop: Stop) -> None:
    from detectors.ultralytics_backend import prepare_offline_environment
    from edge_ai.yolo.model import Detector, model_spec

    config = options.config
    prepare_offline_environment(config.buffer_dir / "ultralytics")
    log.info("loading model %s", options.model)
    spec = model_spec(
        options.model,
        backend=options.backend,
        layout=options.layout,
        imgsz=options.imgsz,
        labels=options.names,
        device=options.device,
        min_conf=options.min_conf,
    )
    detector = await to_thread(Detector, spec)
    routing = Routing(
        route_low_confidence=config.route_low_confidence,
        analysis_url=config.analysis_url,
        routing_file=options.routing_file,
        vms_inbox=config.vms_url.rstrip("/") + "/analysis",
    )
    routing.refresh_from_file()
    vms = VmsClient(config, program=f"yolo-{options.node_id}")
    analysis = AnalysisClient(
        config,
        program=f"yolo-{options.node_id}",
        url=lambda: routing.target_url,
        max_frames=options.analysis_buffer,
    )
    vms.start()
    analysis.start()
    helping = Helping(
        own_nid=options.node_id,
        rate=options.rate,
        conf=options.conf,
        failure_report_s=options.failure_report_s,
        detect=detector.detect,
        vms=vms,
        secrets=LiveSecrets(options.live_secrets_file),
        record_fields={"model": options.model_name, "model_version": options.model_version},
        max_detections=options.max_detections,
    )
    clip_folder = config.buffer_dir / f"clips-{options.node_id}"
    clips = None
    if not options.analysis_for and (options.clip_classes or options.clip_demo_every_s):
        clips = ClipRecorder(
            clip_folder,
            nid=options.node_id,
            classes=set(options.clip_classes),
            pre_s=options.clip_pre_s,
            post_s=options.clip_post_s,
            max_frames=max(
                2, int((options.clip_pre_s + 1) * max(options.rate, options.focus_rate))
            ),
        )
    uploader = ClipUploader(
        clip_folder,
        vms_url=config.vms_url,
        token=config.token,
        budget_bps=options.clip_budget_bps,
        telemetry_waiting=lambda: len(vms.sender.buffer) > 0,
    )
    worker = Worker(options, detector, vms, analysis, routing, helping, clips)
    worker.refresh()
    live_view = LiveSender(
        ViewRequest(options.view_file),
        worker.latest,
        vms_url=config.vms_url,
        token=config.token,
        nid=options.node_id,
    )

    def put_routing(body: Any) -> tuple[int, Any]:
        problem = routing.apply(body)
        if problem:
            return 400, {"detail": problem, "field": problem.split(":", 1)[0]}
        log.info("routing set through the API: %s", routing.as_json())
        worker.update_profile()
        helping.sync(routing.help_for)
        return 200, routing.as_json()

    def status() -> dict[str, Any]:
        return {
            "routing": routing.as_json(),
            "profile": worker.profile.__dict__,
            "analysis": analysis.sender.stats(),
            "model": options.model_name,
            "posts_for": worker.posts_for,
            "helping": helping.nids,
            "live_view": live_view.stats(),
            "clips": {"written": clips.written if clips else 0, "uploaded": uploader.uploaded},
        }

    api = start_api(config, PROGRAM, vms, status)
    if api is not None:
        api.route("GET", "/routing", lambda _b: (200, routing.as_json()))
        api.route("PUT", "/routing", put_routing)
        await api.start()
    log.info(
        "YOLO worker for node %s%s: model %s v%s, %g fps max, posting to %s",
        options.node_id,
        f" (helping {options.analysis_for})" if options.analysis_for else "",
        options.model_name,
        options.model_version,
        options.rate,
        config.vms_url,
    )
    if worker.profile.name != "normal":
        log.info("starting in profile %s (routing %s)", worker.profile.name, routing.as_json())
    inference = asyncio.create_task(worker.frames(stop))
    uploading = asyncio.create_task(uploader.run(stop))
    viewing = None
    if options.view_file is not None and not options.analysis_for:
        viewing = asyncio.create_task(live_view.run(stop))
    watcher = None
    if options.routing_file:
        watcher = asyncio.create_task(every(LIVE_CHECK_S, stop, worker.watch))
    try:
        await every(options.interval, stop, worker.summarise)
    finally:
        stop.event.set()
        await inference
        if viewing is not None:
            await viewing
        await live_view.aclose()
        await uploading
        await uploader.aclose()
        if watcher is not None:
            await watcher
        await helping.aclose()
        worker.close()
        if api is not None:
            await api.close()
        await analysis.close()
        await vms.close()
        log.info("YOLO worker stopped")


def main(argv: list[str] | None = None) -> int:
    return run_program(PROGRAM, lambda: parse_options(argv), run)
