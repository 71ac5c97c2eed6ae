"""What a detector is made of: the model file, its backend, its output layout, its input size, its
labels and the thresholds. A package's manifest declares the same fields (``detector:``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

from detectors.base import DetectorError

BACKENDS = ("onnxruntime", "ultralytics")
LAYOUTS = ("yolov8", "yolox", "detr")
ONNX_SUFFIXES = (".onnx",)
ULTRALYTICS_WEIGHTS = (".pt", ".torchscript", ".engine", ".tflite")
ULTRALYTICS_ARCH = (".yaml", ".yml")


def infer_backend(model: str) -> Optional[str]:
    suffix = Path(model).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnxruntime"
    if suffix in ULTRALYTICS_WEIGHTS or suffix in ULTRALYTICS_ARCH:
        return "ultralytics"
    return None


@dataclass
class ModelSpec:
    model: str
    backend: Optional[str] = None  # inferred from the suffix when None
    layout: Optional[str] = None  # onnxruntime: yolov8 (default), yolox, detr
    imgsz: Optional[int] = None  # None: the model's fixed input size, else 640
    labels: Union[str, List[str], None] = None  # names, "coco", or a .yaml/.txt file
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    device: Optional[str] = None  # cpu, cuda, cuda:N, tensorrt (onnxruntime), N; None: cpu
    # for onnxruntime, ultralytics' own pick for ultralytics
    half: bool = False  # fp16 on a GPU
    threads: int = 0  # CPU threads of the backend (0: its default)

    def resolved_backend(self) -> str:
        backend = self.backend or infer_backend(self.model)
        if backend is None:
            raise DetectorError(
                "model {}: unknown suffix; name the backend ({})".format(
                    self.model, ", ".join(BACKENDS)
                ),
                "backend",
            )
        return backend

    def resolved_layout(self) -> str:
        return self.layout or "yolov8"

    def check(self) -> None:
        """Refuses, before anything loads, what cannot work (a weights file that is not on disk
        is never downloaded)."""
        backend = self.resolved_backend()
        if backend not in BACKENDS:
            raise DetectorError(
                "backend {!r}: expected one of {}".format(backend, ", ".join(BACKENDS)), "backend"
            )
        if self.layout is not None and self.layout not in LAYOUTS:
            raise DetectorError(
                "layout {!r}: expected one of {}".format(self.layout, ", ".join(LAYOUTS)), "layout"
            )
        if backend == "ultralytics" and self.layout not in (None, "yolov8"):
            raise DetectorError("the ultralytics backend has its own layout", "layout")
        path = Path(self.model)
        arch = path.suffix.lower() in ULTRALYTICS_ARCH
        # An architecture name alone (yolov8n.yaml) is one of ultralytics' bundled configs.
        if not path.is_file() and not (arch and path.parent == Path(".")):
            raise DetectorError(
                "model {}: file not found (models are never downloaded; put the file in the "
                "package)".format(self.model),
                "model",
            )
        if self.imgsz is not None and (self.imgsz < 32 or self.imgsz % 32):
            raise DetectorError(
                "imgsz {}: a multiple of 32, at least 32".format(self.imgsz), "imgsz"
            )
        if not 0 < self.conf <= 1 or not 0 < self.iou <= 1 or self.max_det < 1:
            raise DetectorError("conf and iou in (0, 1], max_det at least 1", "conf")


MANIFEST_FIELDS = ("model", "backend", "layout", "imgsz", "labels")


def section_from_manifest(path: Path) -> Optional[dict]:
    """The ``detector:`` section of a package manifest (``aipackage.yaml``), model and labels
    paths made relative to the manifest's folder; None when the manifest has none."""
    import yaml

    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DetectorError("manifest {}: {}".format(path, exc), "manifest") from None
    section = manifest.get("detector") if isinstance(manifest, dict) else None
    if not isinstance(section, dict):
        return None
    out = {k: section[k] for k in MANIFEST_FIELDS if section.get(k) is not None}
    for key in ("model", "labels"):
        value = out.get(key)
        if isinstance(value, str) and value != "coco":
            out[key] = str(path.parent / value)
    return out
