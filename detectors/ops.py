"""Pre- and post-processing on the CPU (numpy, OpenCV): fitting an image into the network's input,
decoding each output layout, NMS, and boxes back to the image's own pixels.

The letterbox and the box scaling follow ultralytics' own (LetterBox, scale_boxes) to the pixel,
so that a YOLOv8 export answers here what ultralytics' predict answers on the same weights.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

Scale = Tuple[float, float, float, float]  # gain x, gain y, pad x, pad y
PAD_VALUE = 114
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def letterbox(image: np.ndarray, size: int, *, center: bool = True) -> Tuple[np.ndarray, Scale]:
    """Resized keeping the aspect ratio into ``size`` x ``size``, the rest grey (114).
    ``center``: padding on both sides (ultralytics); else right and bottom only (YOLOX)."""
    import cv2

    h, w = image.shape[:2]
    gain = min(size / h, size / w)
    new_w, new_h = round(w * gain), round(h * gain)
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if center:
        dw, dh = (size - new_w) / 2, (size - new_h) / 2
        top, bottom = round(dh - 0.1), round(dh + 0.1)
        left, right = round(dw - 0.1), round(dw + 0.1)
    else:
        top, left, bottom, right = 0, 0, size - new_h, size - new_w
    boxed = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    if center:
        # Where ultralytics' scale_boxes takes the pad to be (from the unrounded size).
        left, top = round((size - w * gain) / 2 - 0.1), round((size - h * gain) / 2 - 0.1)
    return boxed, (gain, gain, float(left), float(top))


def stretch(image: np.ndarray, size: int) -> Tuple[np.ndarray, Scale]:
    """Resized to ``size`` x ``size`` ignoring the aspect ratio (what DETR exports expect)."""
    import cv2

    h, w = image.shape[:2]
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return resized, (size / w, size / h, 0.0, 0.0)


def to_batch(
    images: Sequence[np.ndarray], *, rgb: bool, scale: float, imagenet: bool, dtype: Any
) -> np.ndarray:
    """(B, H, W, 3) uint8 BGR -> (B, 3, H, W) float, contiguous."""
    batch = np.stack(images)
    if rgb:
        batch = batch[..., ::-1]
    out = batch.transpose(0, 3, 1, 2).astype(np.float32)
    if scale != 1.0:
        out *= scale
    if imagenet:
        out = (out - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(out, dtype=dtype)


def unscale(boxes: np.ndarray, scale: Scale, shape: Tuple[int, int]) -> np.ndarray:
    """xyxy boxes in network pixels -> the original image's pixels, clipped to it."""
    gx, gy, px, py = scale
    out = boxes.astype(np.float32, copy=True)
    if px or py:
        # As ultralytics' scale_boxes: the pad it subtracts is rounded the way LetterBox padded.
        out[:, [0, 2]] -= px
        out[:, [1, 3]] -= py
    out[:, [0, 2]] /= gx
    out[:, [1, 3]] /= gy
    h, w = shape
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = np.empty_like(boxes)
    half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
    out[..., 0] = boxes[..., 0] - half_w
    out[..., 1] = boxes[..., 1] - half_h
    out[..., 2] = boxes[..., 0] + half_w
    out[..., 3] = boxes[..., 1] + half_h
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first (boxes xyxy)."""
    order = scores.argsort(kind="stable")[::-1]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    keep: List[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        h = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return np.array(keep, dtype=np.int64)


def select(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    *,
    conf: float,
    iou: Optional[float],
    max_det: int,
    max_nms: int = 30000,
) -> np.ndarray:
    """Rows (x1, y1, x2, y2, score, class) above ``conf``; class-aware NMS when ``iou`` is set
    (boxes of different classes never suppress each other: offset by class, as ultralytics)."""
    mask = scores > conf
    boxes, scores, classes = boxes[mask], scores[mask], classes[mask]
    if scores.size > max_nms:
        top = scores.argsort(kind="stable")[::-1][:max_nms]
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    if iou is not None and scores.size:
        offset = classes.astype(np.float32)[:, None] * 7680.0
        keep = nms(boxes + offset, scores, iou)
    else:
        keep = scores.argsort(kind="stable")[::-1]
    keep = keep[:max_det]
    return np.concatenate(
        [boxes[keep], scores[keep, None], classes[keep, None].astype(np.float32)], axis=1
    )


# The output layouts: raw network output of one image -> boxes xyxy (network pixels), scores,
# class ids.
def decode_yolov8(out: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4 + nc, N): cx, cy, w, h in input pixels, then the class scores (sigmoid applied)."""
    pred = out.T
    scores_all = pred[:, 4:]
    classes = scores_all.argmax(1)
    scores = scores_all[np.arange(len(pred)), classes]
    return xywh_to_xyxy(pred[:, :4]), scores, classes


def yolox_grid(size: int, strides: Sequence[int] = (8, 16, 32)) -> Tuple[np.ndarray, np.ndarray]:
    grids, expanded = [], []
    for stride in strides:
        n = size // stride
        yv, xv = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        expanded.append(np.full((n * n, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(expanded).astype(np.float32)


def decode_yolox(
    out: np.ndarray, grid: np.ndarray, strides: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 5 + nc) as YOLOX's export answers (decode_in_inference off): x, y offsets in grid
    cells, log w, log h, objectness and class scores (sigmoid applied); N = the cells of strides
    8, 16 and 32."""
    xy = (out[:, :2] + grid) * strides
    wh = np.exp(out[:, 2:4]) * strides
    cls_scores = out[:, 5:] * out[:, 4:5]
    classes = cls_scores.argmax(1)
    scores = cls_scores[np.arange(len(out)), classes]
    return xywh_to_xyxy(np.concatenate([xy, wh], 1)), scores, classes


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
