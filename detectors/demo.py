"""The demo model and the demo camera's pictures, made without torch and without downloads.

The demo model (``detectors/models/demo-yolov8.onnx``, about 10 KB) is a tiny network in the
YOLOv8 export layout with **random weights**: its boxes and classes mean nothing. It exists so a
fresh install detects end to end (YOLO worker, analysis worker, hand-off); a real model is one
setting away (YOLO_MODEL / ANALYSIS_MODEL = a YOLOv8/YOLO11, YOLOX or DETR-family ONNX file).
``build_demo_model`` (needs the ``onnx`` package, a test dependency) writes the shipped file; the
same seed gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEMO_MODEL = MODELS_DIR / "demo-yolov8.onnx"
DEMO_IMGSZ = 640
_STRIDE = 32
_CLASSES = 80
_SEED = 23


def build_demo_model(path: Path = DEMO_MODEL, *, classes: int = _CLASSES) -> Path:
    """A YOLOv8-layout graph: images (B, 3, 640, 640) -> output0 (B, 4 + classes, 400).

    The image is averaged over 32 x 32 cells (20 x 20 anchors); two 1x1 convolutions with
    seeded random weights give each cell a box (centre within its cell, 16-112 px wide and high)
    and class scores (sigmoid), so what it detects follows the colours of the picture.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(_SEED)
    cells = DEMO_IMGSZ // _STRIDE
    channels = 4 + classes
    w1 = rng.normal(0, 1.0, (16, 3, 1, 1)).astype(np.float32)
    b1 = rng.normal(0, 0.5, 16).astype(np.float32)
    w2 = rng.normal(0, 1.0, (channels, 16, 1, 1)).astype(np.float32)
    b2 = np.concatenate([np.zeros(4), np.full(classes, -10.0)]).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
    grid = np.stack([xs.reshape(-1), ys.reshape(-1)])[None].astype(np.float32) + 0.5

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value), name)

    inits = [
        const("w1", w1),
        const("b1", b1),
        const("w2", w2),
        const("b2", b2),
        const("grid", grid),
        const("shape", np.array([0, channels, cells * cells], dtype=np.int64)),
        const("axis1", np.array([1], dtype=np.int64)),
        const("s0", np.array([0], dtype=np.int64)),
        const("s2", np.array([2], dtype=np.int64)),
        const("s4", np.array([4], dtype=np.int64)),
        const("send", np.array([channels], dtype=np.int64)),
        const("half", np.array(0.5, dtype=np.float32)),
        const("stride", np.array(float(_STRIDE), dtype=np.float32)),
        const("span", np.array(96.0, dtype=np.float32)),
        const("least", np.array(16.0, dtype=np.float32)),
    ]
    node = helper.make_node
    nodes = [
        node(
            "AveragePool", ["images"], ["pooled"], kernel_shape=[_STRIDE] * 2, strides=[_STRIDE] * 2
        ),
        node("Conv", ["pooled", "w1", "b1"], ["hidden0"]),
        node("Relu", ["hidden0"], ["hidden"]),
        node("Conv", ["hidden", "w2", "b2"], ["raw4d"]),
        node("Reshape", ["raw4d", "shape"], ["raw"]),
        node("Slice", ["raw", "s0", "s2", "axis1"], ["xy_raw"]),
        node("Slice", ["raw", "s2", "s4", "axis1"], ["wh_raw"]),
        node("Slice", ["raw", "s4", "send", "axis1"], ["cls_raw"]),
        node("Tanh", ["xy_raw"], ["xy_t"]),
        node("Mul", ["xy_t", "half"], ["xy_h"]),
        node("Add", ["xy_h", "grid"], ["xy_cells"]),
        node("Mul", ["xy_cells", "stride"], ["xy"]),
        node("Sigmoid", ["wh_raw"], ["wh_s"]),
        node("Mul", ["wh_s", "span"], ["wh_m"]),
        node("Add", ["wh_m", "least"], ["wh"]),
        node("Sigmoid", ["cls_raw"], ["scores"]),
        node("Concat", ["xy", "wh", "scores"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "demo-yolov8-random-weights",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["batch", 3, DEMO_IMGSZ, DEMO_IMGSZ]
            )
        ],
        [
            helper.make_tensor_value_info(
                "output0", TensorProto.FLOAT, ["batch", channels, cells * cells]
            )
        ],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="detectors.demo",
        doc_string="random weights: the boxes and classes mean nothing (a demo model)",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def demo_frames(count: int = 4, width: int = 640, height: int = 480) -> List[bytes]:
    """JPEG pictures for the demo camera when ultralytics' bundled ones are not installed: a
    gradient with coloured rectangles and discs that move from picture to picture."""
    import cv2

    frames = []
    for index in range(count):
        y = np.linspace(40, 200, height, dtype=np.float32)[:, None, None]
        x = np.linspace(200, 60, width, dtype=np.float32)[None, :, None]
        image = np.broadcast_to((y + x) / 2, (height, width, 3)).astype(np.uint8).copy()
        shift = index * 40
        cv2.rectangle(image, (60 + shift, 200), (180 + shift, 420), (40, 40, 220), -1)
        cv2.rectangle(image, (380, 120 + shift // 2), (600, 260 + shift // 2), (230, 180, 20), -1)
        cv2.circle(image, (300 - shift, 120), 60, (30, 220, 60), -1)
        cv2.circle(image, (520, 380), 50 + index * 5, (250, 250, 250), -1)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        frames.append(data.tobytes())
    return frames


def write_demo_frames(folder: Path) -> Path:
    """The demo pictures as ``folder/demo-N.jpg`` (an image folder a YOLO worker can loop)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(demo_frames()):
        (folder / "demo-{}.jpg".format(index)).write_bytes(data)
    return folder
