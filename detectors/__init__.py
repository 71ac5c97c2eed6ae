"""Object detectors behind one interface, used by the edge's YOLO worker and the analysis service.

``load_detector(ModelSpec(...))`` answers a :class:`~detectors.base.Detector`: a batch of BGR
images (numpy arrays, as OpenCV decodes them) in, one list of :class:`Detection` per image out,
boxes ``xyxy`` in the image's own pixels. Backends:

- ``onnxruntime`` (core dependency): ``.onnx`` files; providers ``cpu``, ``cuda``, ``tensorrt``
  as installed and asked; output layouts ``yolov8`` (YOLOv8/YOLO11 export, NMS here), ``yolox``
  (raw grid output: decode and NMS here), ``detr`` (RT-DETR, D-FINE, DEIM, RF-DETR: no NMS);
- ``ultralytics`` (the ``edge`` extra: torch): ``.pt`` weights or a ``.yaml`` architecture
  (random weights).

This package imports no service and nothing of ``edge_ai``; it runs on Python 3.8 (the edge).
"""

from detectors.base import Detection, Detector, DetectorError
from detectors.spec import BACKENDS, LAYOUTS, ModelSpec

__all__ = [
    "BACKENDS",
    "LAYOUTS",
    "Detection",
    "Detector",
    "DetectorError",
    "ModelSpec",
    "load_detector",
]


def load_detector(spec: ModelSpec) -> Detector:
    """The detector ``spec`` describes, loaded (raises DetectorError naming the field at fault)."""
    spec.check()
    if spec.resolved_backend() == "ultralytics":
        from detectors.ultralytics_backend import UltralyticsDetector

        return UltralyticsDetector(spec)
    from detectors.onnx_backend import OnnxDetector

    return OnnxDetector(spec)
