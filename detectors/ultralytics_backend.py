"""The ultralytics backend (the ``edge`` extra: torch + ultralytics): ``.pt`` weights, or an
architecture file (``yolov8n.yaml``: random weights, from ultralytics' bundled configs).

Offline: YOLO_OFFLINE=1 (no online checks, no telemetry), YOLO_AUTOINSTALL=false (never
pip-installs a missing requirement), a private YOLO_CONFIG_DIR; weights are never downloaded
(ModelSpec.check refuses a weights file that is not on disk).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any, List, Sequence

from detectors.base import Detection, Detector, Prepared
from detectors.labels import load_labels
from detectors.spec import ModelSpec


def prepare_offline_environment(config_dir: Path) -> None:
    """Must run before ultralytics is imported: it reads these at import time."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    if "YOLO_CONFIG_DIR" not in os.environ:
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)


class UltralyticsDetector(Detector):
    backend = "ultralytics"

    def __init__(self, spec: ModelSpec):
        prepare_offline_environment(Path(tempfile.gettempdir()) / "detectors-ultralytics")
        from ultralytics import YOLO

        self.spec = spec
        self.model = YOLO(spec.model, task="detect")
        self.name = Path(spec.model).stem
        self.imgsz = spec.imgsz or 640
        self.device = spec.device or "auto"
        names = {int(k): str(v) for k, v in dict(self.model.names).items()}
        if spec.labels is not None or names == {i: str(i) for i in range(len(names))}:
            # A network built from an architecture file only has "0".."79".
            names = load_labels(spec.labels, len(names)) or names
        self.class_names = names
        # ultralytics' predictor is not thread-safe: one prediction at a time.
        self._lock = threading.Lock()

    def prepare(self, images: Sequence[Any]) -> Prepared:
        shapes = [(int(i.shape[0]), int(i.shape[1])) for i in images]
        return Prepared(list(images), shapes, [(1.0, 1.0, 0.0, 0.0)] * len(images))

    def forward(self, prepared: Prepared) -> Any:
        s = self.spec
        with self._lock:
            return self.model.predict(
                prepared.tensor,
                conf=s.conf,
                iou=s.iou,
                imgsz=self.imgsz,
                device=s.device,
                max_det=s.max_det,
                half=s.half,
                verbose=False,
            )

    def finish(self, raw: Any, prepared: Prepared) -> List[List[Detection]]:
        answers = []
        for result in raw:
            boxes = result.boxes
            found = []
            if boxes is not None and len(boxes):
                # tolist() copies to the host from any device.
                rows = zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())
                for (x1, y1, x2, y2), conf, cls in rows:
                    cid = int(cls)
                    found.append(
                        Detection(
                            self.class_names.get(cid, str(cid)),
                            cid,
                            float(conf),
                            (float(x1), float(y1), float(x2), float(y2)),
                        )
                    )
            answers.append(found)
        return answers
