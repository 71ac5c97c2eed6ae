"""The worker's model: a batch of encoded images in, one list of detections per image out, over
the detector package (``detectors``).

The stages are separate so that the worker can overlap them (decode and pre-process of the next
batch run in the prefetch thread while this batch is on the accelerator) and time each one:
decode (JPEG/PNG bytes -> pixels), pre-process (fit into the network's input, stack), inference
(the forward pass), post-process (each layout's decode and NMS, boxes back to each image's size).

On the CPU: OpenCV decodes in threads, the detector's own pre- and post-processing (numpy).
On CUDA with torch installed (the ``edge`` extra): detectors.gpu decodes the JPEGs in batches
with nvJPEG, letterboxes on the GPU, runs fp16 when asked, NMS on the GPU, on a stream of its own
for the prefetch thread's work (see that module).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors import Detection as Found
from detectors import DetectorError, ModelSpec, load_detector
from detectors.base import Prepared
from shared.contracts.analysis import Detection
from shared.errors import Invalid

log = logging.getLogger("edge.analysis.detector")


@dataclass
class Decoded:
    """An image ready for pre-processing, or why it is not."""

    image: Any | None  # np.ndarray (H, W, 3) BGR, or a (3, H, W) uint8 tensor on the GPU
    error: str | None = None
    size: tuple[int, int] = (0, 0)  # height, width


def spec_from(
    model: str,
    *,
    backend: str | None = None,
    layout: str | None = None,
    labels: str | None = None,
    device: str = "cpu",
    imgsz: int | None = None,
    conf: float = 0.25,
    iou: float = 0.7,
    half: bool = False,
    max_det: int = 300,
    threads: int = 0,
) -> ModelSpec:
    return ModelSpec(
        model,
        backend=backend or None,
        layout=layout or None,
        imgsz=imgsz,
        labels=labels or None,
        conf=conf,
        iou=iou,
        max_det=max_det,
        device=device,
        half=half,
        threads=threads,
    )


def gpu_pipeline_possible(device: str) -> bool:
    """CUDA asked, and torch + torchvision installed with a GPU they can see."""
    if not device.startswith(("cuda", "tensorrt")) and not device.isdigit():
        return False
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class BatchDetector:
    def __init__(self, spec: ModelSpec, *, threads: int = 4):
        try:
            self.detector = load_detector(spec)
        except DetectorError as exc:
            raise Invalid(exc.message, field=exc.field) from None
        self.spec = spec
        self.model_name = Path(spec.model).stem
        self.class_names = self.detector.class_names
        self.device = self.detector.device
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
        self.gpu: Any = None
        if gpu_pipeline_possible(spec.device or "cpu"):
            from detectors.gpu import GpuPipeline

            self.gpu = GpuPipeline(self.detector, spec)
            log.info("GPU pipeline: nvJPEG decode, letterbox, NMS on %s", self.gpu.device)

    # Stage 1: decode (threads; OpenCV releases the GIL), or batched nvJPEG on the GPU.
    def decode(self, blobs: list[bytes]) -> list[Decoded]:
        if self.gpu is not None:
            return [Decoded(image, error, size) for image, error, size in self.gpu.decode(blobs)]
        return list(self.pool.map(decode_image, blobs))

    # Stage 2: pre-process: the whole batch one input tensor (one forward pass).
    def preprocess(self, images: list[Any]) -> list[tuple[list[int], Prepared]]:
        if not images:
            return []
        prepare = self.gpu.prepare if self.gpu is not None else self.detector.prepare
        return [(list(range(len(images))), prepare(images))]

    # Stage 3: one forward pass.
    def infer(self, prepared: Prepared) -> Any:
        if self.gpu is not None:
            return self.gpu.forward(prepared)
        return self.detector.forward(prepared)

    # Stage 4: decode of the layout, NMS, boxes back to each image's own size.
    def postprocess(self, raw: Any, prepared: Prepared) -> list[list[Detection]]:
        finish = self.gpu.finish if self.gpu is not None else self.detector.finish
        return [[contract(d) for d in found] for found in finish(raw, prepared)]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.detector.close()


def contract(found: Found) -> Detection:
    return Detection(
        class_name=found.class_name,
        class_id=found.class_id,
        confidence=round(found.confidence, 4),
        box=[round(v, 1) for v in found.box],
        source="server",
    )


def decode_image(blob: bytes) -> Decoded:
    import cv2

    if not blob:
        return Decoded(None, "the image is empty")
    if blob.startswith(b"\xff\xd8"):
        # Strict: libjpeg-turbo's warnings are refusals. A truncated JPEG with an end marker
        # appended ("premature end of data segment") would otherwise be padded and analysed.
        import simplejpeg

        try:
            image = simplejpeg.decode_jpeg(blob, colorspace="BGR", strict=True)
        except ValueError as exc:
            return Decoded(None, f"the JPEG is corrupt: {exc}")
        return Decoded(image, size=(int(image.shape[0]), int(image.shape[1])))
    image = cv2.imdecode(np.frombuffer(blob, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return Decoded(None, "the image cannot be decoded as JPEG or PNG")
    return Decoded(image, size=(int(image.shape[0]), int(image.shape[1])))


def cpu_threads(count: int) -> None:
    """CPU threads of the backend (a worker on a shared machine should not take all): OpenMP's
    (onnxruntime's own come from ModelSpec.threads) and torch's when it is installed."""
    if count <= 0:
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(count))
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(count)
