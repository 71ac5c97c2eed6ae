"""The YOLO worker's model: one frame in, detections and the time taken out, over the detector
package (``detectors``: onnxruntime by default, ultralytics for ``.pt``/``.yaml``).

Nothing is downloaded: a weights file must exist locally; an architecture file (``yolov8n.yaml``,
the ``edge`` extra) builds the network with random weights. The default model is the demo ONNX
model (random weights, see detectors.demo): it runs without torch.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from detectors import Detection, DetectorError, ModelSpec, load_detector
from detectors.demo import DEMO_MODEL
from edge_ai.common.config import ConfigError

__all__ = ["DEFAULT_MODEL", "Detection", "Detector", "model_spec"]

DEFAULT_MODEL = str(DEMO_MODEL)


def model_spec(
    model: str,
    *,
    backend: str | None = None,
    layout: str | None = None,
    imgsz: int | None = None,
    labels: str | None = None,
    device: str | None = None,
    min_conf: float = 0.1,
    max_det: int = 300,
) -> ModelSpec:
    """The detector's spec, checked before anything loads (ConfigError naming the problem)."""
    spec = ModelSpec(
        model,
        backend=backend or None,
        layout=layout or None,
        imgsz=imgsz,
        labels=labels or None,
        conf=min_conf,
        max_det=max_det,
        device=device or None,
    )
    try:
        spec.check()
    except DetectorError as exc:
        raise ConfigError(f"--{exc.field}: {exc.message}") from None
    return spec


class Detector:
    """One frame at a time (the worker's camera and the cameras it helps share the model)."""

    def __init__(self, spec: ModelSpec):
        try:
            self.detector = load_detector(spec)
        except DetectorError as exc:
            raise ConfigError(f"--{exc.field}: {exc.message}") from None
        self.class_names = self.detector.class_names
        self._lock = threading.Lock()

    def detect(self, frame: Any) -> tuple[list[Detection], float]:
        """All detections at or above the spec's confidence and the wall time of the whole call in
        ms (pre-processing, inference and NMS: what bounds the frame rate on the box)."""
        with self._lock:
            started = time.perf_counter()
            [found] = self.detector.detect([frame])
            return found, (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.detector.close()
