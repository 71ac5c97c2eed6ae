"""Boxes, class names and scores drawn on a picture (OpenCV), as the analysis service answers
``POST /analyze?annotate=true`` and writes annotated videos."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

Box = Tuple[str, float, Sequence[float]]  # class name, score, (x1, y1, x2, y2)
COLOUR = (0, 200, 255)  # BGR: amber


def draw(image: np.ndarray, boxes: Iterable[Box]) -> np.ndarray:
    """``image`` (BGR) with each box, its class name and score drawn on it (in place)."""
    import cv2

    thickness = max(1, round(max(image.shape[:2]) / 500))
    scale = max(0.4, max(image.shape[:2]) / 1600)
    for name, score, (x1, y1, x2, y2) in boxes:
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(image, p1, p2, COLOUR, thickness)
        label = "{} {:.2f}".format(name, score)
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = p1[1] - h - base - 2 if p1[1] - h - base - 2 >= 0 else p1[1]
        cv2.rectangle(image, (p1[0], top), (p1[0] + w + 2, top + h + base + 2), COLOUR, -1)
        cv2.putText(
            image,
            label,
            (p1[0] + 1, top + h + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return image


def annotate_jpeg(blob: bytes, boxes: Iterable[Box], quality: int = 85) -> Optional[bytes]:
    """The encoded picture (JPEG or PNG) with the boxes drawn, as JPEG; None when it does not
    decode."""
    import cv2

    image = cv2.imdecode(np.frombuffer(blob, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    ok, data = cv2.imencode(".jpg", draw(image, boxes), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else None
