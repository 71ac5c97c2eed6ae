"""What every backend answers: detections in the image's own pixels, and the staged interface
(prepare, forward, finish) a batch pipeline overlaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple


class DetectorError(Exception):
    """A model that cannot be loaded or does not match what was declared; ``field`` names the
    setting at fault (``model``, ``layout``, ``imgsz``, ``labels``, ``backend``, ``device``)."""

    def __init__(self, message: str, field: str = "model"):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Detection:
    class_name: str
    class_id: int
    confidence: float
    box: Tuple[float, float, float, float]  # x1, y1, x2, y2 in the original image's pixels

    def as_json(self) -> Dict[str, Any]:
        return {
            "class": self.class_name,
            "class_id": self.class_id,
            "confidence": round(self.confidence, 3),
            "box": [round(v, 1) for v in self.box],
        }


@dataclass
class Prepared:
    """A batch ready for the network: the input tensor(s) and how each image was fitted into the
    network's input (to map boxes back)."""

    tensor: Any  # np.ndarray (B, 3, H, W) or a torch tensor on the GPU
    shapes: List[Tuple[int, int]]  # each original image's (height, width)
    scales: List[Tuple[float, float, float, float]]  # gain x, gain y, pad x, pad y
    extra: Dict[str, Any] = field(default_factory=dict)


class Detector:
    """A loaded model. ``detect`` is prepare -> forward -> finish; a pipeline may run the stages
    in different threads (prepare of the next batch while this one is on the accelerator)."""

    name: str = ""
    backend: str = ""
    device: str = "cpu"
    imgsz: int = 640
    class_names: Dict[int, str]

    def prepare(self, images: Sequence[Any]) -> Prepared:
        raise NotImplementedError

    def forward(self, prepared: Prepared) -> Any:
        raise NotImplementedError

    def finish(self, raw: Any, prepared: Prepared) -> List[List[Detection]]:
        raise NotImplementedError

    def detect(self, images: Sequence[Any]) -> List[List[Detection]]:
        """BGR images (H, W, 3 uint8) in, one list of detections per image out."""
        if not images:
            return []
        prepared = self.prepare(images)
        return self.finish(self.forward(prepared), prepared)

    def close(self) -> None:
        """Releases what the backend holds (sessions, thread pools)."""
