"""The analysis service's settings; its own are read with the ANALYSIS_ prefix
(e.g. ANALYSIS_RATE_PER_S). Redis is found under the fixed name EDGE_REDIS_URL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.deps import from_app_state
from shared.settings import ServiceSettings, _fixed


class AnalysisSettings(ServiceSettings):
    """Gateway, queue, worker, cache and rate-limit settings of the analysis service."""

    model_config = SettingsConfigDict(env_prefix="ANALYSIS_", extra="ignore", populate_by_name=True)

    service_name: str = "analysis"
    default_port: ClassVar[int] = 8004
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=_fixed("EDGE_REDIS_URL"),
        description="Redis: the job queue, results, the result cache and the token buckets",
    )
    key_prefix: str = Field(
        "edge:analysis", description="prefix of every Redis key the service uses"
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, description="request body limit of POST /analyze (413 above)"
    )

    # Images.
    max_image_pixels: int = Field(
        40_000_000, description="width x height above this is refused (422)"
    )

    # Queue and jobs.
    queue_max_jobs: int = Field(
        1_000, description="jobs waiting or in work before POST /analyze answers 503"
    )
    retry_after_s: int = Field(1, description="Retry-After of a 503 when the queue is full")
    sync_timeout_s: float = Field(
        30.0, description="how long a synchronous POST /analyze waits (504 after)"
    )
    result_ttl_s: int = Field(3600, description="how long a job's result can be polled")
    lease_s: float = Field(
        30.0, description="a job held this long by a worker that stopped is re-queued"
    )
    max_attempts: int = Field(
        3, description="deliveries of one job before it is dead-lettered (failed)"
    )

    # Worker (edgectl analysis-worker; options override these).
    model: str = Field(
        "",
        description="ONNX model (.onnx: YOLOv8/YOLO11, YOLOX, DETR family), ultralytics weights "
        "(.pt) or architecture (.yaml, random weights; .pt and .yaml need the edge extra); empty: "
        "the demo ONNX model (random weights: its boxes mean nothing)",
    )
    backend: str | None = Field(
        None, description="onnxruntime or ultralytics (default: from the model's suffix)"
    )
    layout: str | None = Field(
        None, description="output layout of an ONNX model: yolov8 (default), yolox, detr"
    )
    labels: str | None = Field(
        None, description="class names: coco, a .yaml file with names or a .txt file, one a line"
    )
    device: str = Field("cpu", description="cpu, cuda, cuda:0, tensorrt (ONNX) ...")
    imgsz: int | None = Field(
        None, description="network input size (default: the ONNX model's, else 640)"
    )
    conf: float = Field(0.25, description="minimum confidence of a detection")
    iou_nms: float = Field(0.7, description="NMS IoU threshold")
    half: bool = Field(False, description="fp16 inference (CUDA only)")
    batch_size: int = Field(16, description="images per forward pass at most")
    batch_wait_ms: float = Field(5.0, description="how long a worker waits to fill a batch")

    # Result cache.
    cache_ttl_s: int = Field(
        86_400, description="how long a result stays cached (by image hash and model)"
    )
    cache_max_entries: int = Field(
        100_000, description="cached results in Redis at most (oldest evicted)"
    )
    local_cache_entries: int = Field(
        1_000, description="in-process LRU, answers while Redis is down"
    )

    # Token buckets (rate <= 0 turns a bucket off).
    rate_per_s: float = Field(0.5, description="tokens a second per caller (edge or token)")
    rate_capacity: float = Field(30.0, description="bucket size per caller (burst)")
    global_rate_per_s: float = Field(
        0.0, description="tokens a second for all callers together (0: off)"
    )
    global_capacity: float = Field(100.0, description="size of the global bucket")

    # Videos.
    video_dir: str = Field("/tmp/edge-analysis-videos", description="uploads and annotated videos")
    video_max_bytes: int = Field(
        512 * 1024 * 1024, description="body limit of POST /videos (413 above)"
    )
    video_window: int = Field(32, description="frames of one video in the queue at once")
    video_max_pixels: int = Field(
        3840 * 2160,
        gt=0,
        description="width x height of a video above this is refused (422), read from the "
        "container's headers before any frame is decoded",
    )
    video_max_frames: int = Field(
        18_000, gt=0, description="frames of one video at most (422 above; from its headers)"
    )
    video_max_duration_s: float = Field(
        600.0, gt=0, description="seconds of one video at most (422 above; from its headers)"
    )

    # Fusion.
    fusion_iou: float = Field(
        0.75, description="IoU at or above which an edge box and a server box merge"
    )

    # The VMS's analysis inbox.
    consume_vms_inbox: bool = Field(
        False, description="claim frames queued at the VMS and write results back"
    )
    inbox_interval_s: float = Field(2.0, description="how often the VMS inbox is polled")
    inbox_batch: int = Field(16, description="frames claimed from the VMS per poll")
    vms_timeout_s: float = Field(5.0, description="timeout of calls to the VMS")

    @property
    def model_path(self) -> str:
        """The model file (the demo model when none is set)."""
        if self.model:
            return self.model
        from detectors.demo import DEMO_MODEL

        return str(DEMO_MODEL)

    @property
    def model_name(self) -> str:
        """The model's name in results and cache keys: the file's stem (``yolov8m``)."""
        return Path(self.model_path).stem


SettingsDep = Annotated[AnalysisSettings, Depends(from_app_state("settings", AnalysisSettings))]
