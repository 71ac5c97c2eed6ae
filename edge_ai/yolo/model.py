"""Loading the ultralytics model offline and turning its output into plain detections.

Offline means: YOLO_OFFLINE=1 (ultralytics' own switch: no online checks, no telemetry),
YOLO_AUTOINSTALL=false (never pip-installs a missing requirement such as onnxruntime), a private
YOLO_CONFIG_DIR (no shared settings file touched), no plotting (labels would fetch a font), and a
weights file that must exist locally (a missing ``.pt`` would otherwise be downloaded). An
architecture file (``yolov8n.yaml``) builds the network with random weights from ultralytics'
bundled configs: enough to exercise the whole pipeline without any weights.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ultralytics.engine.results import Results

from edge_ai.common.config import ConfigError

WEIGHT_SUFFIXES = {".pt", ".onnx", ".engine", ".torchscript", ".tflite"}
ARCH_SUFFIXES = {".yaml", ".yml"}


def prepare_offline_environment(config_dir: Path) -> None:
    """Must run before ultralytics is imported: it reads these at import time."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    if "YOLO_CONFIG_DIR" not in os.environ:
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)


def check_model_spec(spec: str) -> None:
    """Refuse, before anything loads, a weights file that is not on disk (ultralytics would download
    it)."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in WEIGHT_SUFFIXES:
        if not path.is_file():
            raise ConfigError(
                f"model {spec}: file not found (weights are "
                "never downloaded; put the file in the package)"
            )
    elif suffix in ARCH_SUFFIXES:
        if path.parent != Path(".") and not path.is_file():
            raise ConfigError(f"model {spec}: architecture file not found")
    else:
        raise ConfigError(
            f"model {spec}: expected weights ({', '.join(sorted(WEIGHT_SUFFIXES))}) "
            "or an architecture file (.yaml)"
        )


@dataclass(frozen=True)
class Detection:
    class_name: str
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "class": self.class_name,
            "class_id": self.class_id,
            "confidence": round(self.confidence, 3),
            "box": [round(v, 1) for v in self.box],
        }


class Detector:
    def __init__(
        self,
        spec: str,
        *,
        imgsz: int = 640,
        device: str | None = None,
        min_conf: float = 0.1,
        max_det: int = 300,
        names_file: str | None = None,
    ):
        check_model_spec(spec)
        from ultralytics import YOLO

        task = "detect"
        self.model = YOLO(spec, task=task)
        self.spec = spec
        self.imgsz = imgsz
        self.device = device
        self.min_conf = min_conf
        self.max_det = max_det
        self.class_names = self._names(names_file)
        # One prediction at a time: the worker's own camera and the cameras it helps share the
        # model (ultralytics' predictor is not thread-safe).
        self._lock = threading.Lock()

    def _names(self, names_file: str | None) -> dict[int, str]:
        """The model's class names; a network built from an architecture file only has "0".."79",
        so those take names from ``names_file`` (YAML with ``names``) or, for 80 classes, the COCO
        names ultralytics bundles."""
        names = {int(k): str(v) for k, v in dict(self.model.names).items()}
        if names != {i: str(i) for i in range(len(names))}:
            return names
        import yaml

        if names_file:
            source = Path(names_file)
        elif len(names) == 80:
            import ultralytics

            source = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml"
        else:
            return names
        try:
            loaded = yaml.safe_load(source.read_text())["names"]
        except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise ConfigError(f"class names {source}: unreadable ({exc})") from None
        if isinstance(loaded, list):
            loaded = dict(enumerate(loaded))
        return {int(k): str(v) for k, v in loaded.items()}

    def detect(self, frame: Any) -> tuple[list[Detection], float]:
        """All detections at or above ``min_conf`` and the wall time of the whole call in ms
        (pre-processing, inference and NMS: what bounds the frame rate on the box)."""
        with self._lock:
            started = time.perf_counter()
            # predict() without stream=True answers a list of Results (its annotation is wider).
            results = cast(
                "list[Results]",
                self.model.predict(
                    frame,
                    conf=self.min_conf,
                    imgsz=self.imgsz,
                    device=self.device,
                    max_det=self.max_det,
                    verbose=False,
                ),
            )
            elapsed_ms = (time.perf_counter() - started) * 1000
        result = results[0]
        boxes = result.boxes
        names = self.class_names
        detections = []
        if boxes is not None and len(boxes):
            # tolist() copies to the host from any device (tensors) and works on numpy arrays too.
            xyxy, confs, classes = boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist()
            for box, conf, cls in zip(xyxy, confs, classes):
                cid = int(cls)
                x1, y1, x2, y2 = (float(v) for v in box)
                name = str(names.get(cid, cid))
                detections.append(Detection(name, cid, float(conf), (x1, y1, x2, y2)))
        return detections, elapsed_ms
