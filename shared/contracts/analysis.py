"""What the analysis service and its callers (edges, the VMS, the console) exchange.

Boxes are ``[x1, y1, x2, y2]`` in pixels of the image as it was sent. ``source`` says who found a
box: ``edge`` (the edge's own detector), ``server`` (the analysis service's model) or ``fused``
(an edge box and a server box of the same class that overlap by IoU at or above the threshold).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

Source = Literal["edge", "server", "fused"]
JobStatus = Literal["queued", "done", "failed"]
Mode = Literal["precise", "offload"]


class Detection(BaseModel):
    """One box. ``class`` is the class name (the field's key); ``class_id`` its index."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    class_name: str = Field(alias="class", min_length=1, max_length=64)
    class_id: int | None = Field(None, ge=0)
    confidence: float = Field(ge=0.0, le=1.0)
    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in pixels")
    source: Source | None = None

    @field_validator("box")
    @classmethod
    def _ordered(cls, box: list[float]) -> list[float]:
        if box[2] < box[0] or box[3] < box[1]:
            raise ValueError("box must be [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1")
        return box

    def as_json(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)


class AnalyzeMetadata(BaseModel):
    """Optional metadata sent with an image (multipart part ``metadata`` or query parameters)."""

    model_config = ConfigDict(extra="ignore")

    nid: str | None = Field(None, min_length=1, max_length=32)
    camera_time: datetime | None = None
    mode: Mode = "precise"
    detections: list[Detection] = Field(default_factory=list, max_length=1000)


class StageTimings(BaseModel):
    """Milliseconds spent per stage for this image (a batch's time split evenly over its images)."""

    queue_ms: float = 0.0
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    nms_ms: float = 0.0


class JobError(BaseModel):
    type: str
    message: str
    field: str | None = None


class AnalysisResult(BaseModel):
    """One image's answer: the server's detections, and the fused result when edge boxes came."""

    job_id: str
    status: JobStatus
    image_sha256: str
    model: str
    width: int | None = None
    height: int | None = None
    detections: list[Detection] = Field(default_factory=list)
    fused: list[Detection] | None = None
    cached: bool = False
    attempts: int = 0
    batch_size: int | None = None
    timings: StageTimings | None = None
    error: JobError | None = None
    nid: str | None = None
    camera_time: datetime | None = None
    mode: Mode | None = None
    vms_request_id: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> dict[str, int]:
        """Boxes per class name: of the fused result when edge boxes came, else the server's."""
        counts: dict[str, int] = {}
        for d in self.fused if self.fused is not None else self.detections:
            counts[d.class_name] = counts.get(d.class_name, 0) + 1
        return counts


class JobAccepted(BaseModel):
    """``POST /analyze?async=true``: where to poll."""

    job_id: str
    status: JobStatus
    poll: str


# Videos (POST /videos, GET /videos/{id}), uploaded by the console or an edge.


class VideoStatus(StrEnum):
    analysing = "analysing"
    rendering = "rendering"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class VideoAccepted(BaseModel):
    """``POST /videos`` (202): the video's id, what its headers say, and where to follow it."""

    video_id: str
    status: VideoStatus
    frames_total: int
    fps: float
    width: int
    height: int
    events: str = Field(description="its per-frame results (Server-Sent Events)")
    status_url: str = Field(description="its progress")
    annotated: str = Field(description="the video with its boxes drawn, once done")
    cancel: str = Field(description="POST to stop it")


class VideoProgress(BaseModel):
    """``GET /videos/{id}``: a field the video has not reached yet is left out."""

    video_id: str
    status: VideoStatus
    frames_total: int | None = None
    frames_done: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float = 0.0
    rendered: int | None = Field(None, description="frames drawn so far (while rendering)")
    error: str | None = None
    annotated: str | None = Field(None, description="once done: the video with its boxes drawn")


# The VMS's analysis inbox, as the analysis service consumes it.


class InboxFrame(BaseModel):
    """A frame an edge posted to the VMS's ``POST /analysis``, claimed for analysis."""

    id: int
    nid: str
    ts: datetime | None = None
    reason: str | None = None
    metadata: dict = Field(default_factory=dict)
    image_sha256: str


class InboxClaimRequest(BaseModel):
    """What the analysis service asks of ``POST /analysis/claim``: up to ``limit`` queued frames,
    leased for ``lease_s`` seconds."""

    limit: int = Field(16, ge=1, le=256)
    lease_s: float = Field(120.0, gt=0, le=3600)


class InboxClaim(BaseModel):
    """The VMS's answer to ``POST /analysis/claim``: frames leased until ``lease_until``."""

    frames: list[InboxFrame]
    lease_until: datetime


class InboxResult(BaseModel):
    """What the analysis service writes back to ``PUT /analysis/{id}/result``."""

    status: Literal["done", "failed"]
    model: str
    detections: list[Detection] = Field(default_factory=list)
    fused: list[Detection] | None = None
    error: JobError | None = None
    analysed_at: datetime


class InboxResultRecorded(BaseModel):
    """The VMS's answer to ``PUT /analysis/{id}/result``: ``written`` false when the frame had a
    result already (the first is kept); ``status`` is the frame's status now."""

    id: int
    status: str
    written: bool
