"""Each onnxruntime output layout on a model made here: a YOLOv8 export of random weights
(checked box for box against ultralytics' own predict on the same weights), and YOLOX and DETR
graphs built with the onnx helpers whose outputs are known, so the boxes are known."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from detectors import DetectorError, ModelSpec, load_detector
from detectors.layouts import check_onnx_model

# ONNX Runtime (fp32, CPU) against torch (fp32, CPU) on the same weights and the same letterbox:
# boxes within 0.5 px of ultralytics' in the original image's pixels, scores within 1e-3.
BOX_TOLERANCE_PX = 0.5
SCORE_TOLERANCE = 1e-3


def graph_with_outputs(
    path: Path, outputs: dict[str, np.ndarray], imgsz: int, *, size_input: bool = False
) -> str:
    """A model whose outputs are the given constants (plus 0 x the image, so the image is a real
    input): what a network that saw these objects would answer."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value, f"{name}_value"))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
            kind = TensorProto.FLOAT
        else:
            nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
            kind = TensorProto.INT64
        outs.append(helper.make_tensor_value_info(name, kind, list(value.shape)))
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])]
    if size_input:
        inputs.append(helper.make_tensor_value_info("orig_target_sizes", TensorProto.INT64, [1, 2]))
    graph = helper.make_graph(nodes, "test", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return str(path)


def image(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


def test_yolox_grid_decode_and_nms(tmp_path):
    imgsz, classes = 64, 3
    cells = [(8, 8), (16, 4), (32, 2)]  # stride, cells a side
    anchors = sum(n * n for _, n in cells)
    raw = np.zeros((1, anchors, 5 + classes), dtype=np.float32)
    raw[0, :, 4] = 0.01  # objectness: nothing, almost everywhere

    def put(index: int, dx: float, dy: float, w_cells: float, obj: float, cls: int, p: float):
        raw[0, index, :4] = [dx, dy, math.log(w_cells), math.log(w_cells)]
        raw[0, index, 4] = obj
        raw[0, index, 5 + cls] = p

    # Stride 8, cell (x 3, y 2): centre (28, 20), 16 px square, score 0.9 x 0.8.
    put(2 * 8 + 3, 0.5, 0.5, 2.0, 0.9, 1, 0.8)
    # The next cell, nearly the same box with a lower score: NMS removes it.
    put(2 * 8 + 4, -0.4, 0.5, 2.0, 0.9, 1, 0.6)
    # Stride 16, cell (x 1, y 1): centre (24, 24), 32 px square, class 2, score 0.5.
    put(64 + 1 * 4 + 1, 0.5, 0.5, 2.0, 1.0, 2, 0.5)
    model = graph_with_outputs(tmp_path / "yolox.onnx", {"output": raw}, imgsz)

    detector = load_detector(ModelSpec(model, layout="yolox", conf=0.3, labels=["a", "b", "c"]))
    # 128 x 96: gain 0.5, YOLOX pads right and bottom only: boxes are the network's x 2.
    [found] = detector.detect([image(128, 96)])
    assert [(d.class_name, round(d.confidence, 3)) for d in found] == [("b", 0.72), ("c", 0.5)]
    assert found[0].box == pytest.approx((40, 24, 72, 56), abs=1e-3)
    assert found[1].box == pytest.approx((16, 16, 80, 80), abs=1e-3)

    with pytest.raises(DetectorError) as refused:
        load_detector(ModelSpec(model, layout="yolov8"))
    assert refused.value.field == "layout"


def test_detr_family_without_nms(tmp_path):
    imgsz, queries = 64, 4
    # Normalised cx, cy, w, h: (0.5, 0.5, 0.2, 0.4) in a 200 x 100 picture is (80, 30, 120, 70).
    box = [0.5, 0.5, 0.2, 0.4]
    expected = (80, 30, 120, 70)

    # RT-DETR (ultralytics export): (batch, queries, 4 + classes), scores after sigmoid.
    single = np.zeros((1, queries, 4 + 2), dtype=np.float32)
    single[0, 0] = [*box, 0.1, 0.9]
    single[0, 1] = [*box, 0.85, 0.1]  # the same box, another class: no NMS, both stay
    rtdetr = graph_with_outputs(tmp_path / "rtdetr.onnx", {"output0": single}, imgsz)

    # RF-DETR: dets (cxcywh, normalised) and labels (logits).
    dets = np.zeros((1, queries, 4), dtype=np.float32)
    dets[0, 0] = box
    dets[0, 1] = box
    logits = np.full((1, queries, 2), -9.0, dtype=np.float32)
    logits[0, 0, 1] = math.log(0.9 / 0.1)
    logits[0, 1, 0] = math.log(0.85 / 0.15)
    rfdetr = graph_with_outputs(tmp_path / "rfdetr.onnx", {"dets": dets, "labels": logits}, imgsz)

    # D-FINE / DEIM / RT-DETRv2: labels, boxes (xyxy scaled by orig_target_sizes), scores.
    labels = np.array([[1, 0, 0, 0]], dtype=np.int64)
    scores = np.array([[0.9, 0.85, 0.01, 0.01]], dtype=np.float32)
    xyxy = np.zeros((1, queries, 4), dtype=np.float32)
    xyxy[0, :2] = [(box[0] - 0.1) * imgsz, (box[1] - 0.2) * imgsz, 0.6 * imgsz, 0.7 * imgsz]
    dfine = graph_with_outputs(
        tmp_path / "dfine.onnx",
        {"labels": labels, "boxes": xyxy, "scores": scores},
        imgsz,
        size_input=True,
    )

    for model in (rtdetr, rfdetr, dfine):
        detector = load_detector(ModelSpec(model, layout="detr", conf=0.5, labels=["cat", "dog"]))
        [found] = detector.detect([image(200, 100)])
        assert [(d.class_name, round(d.confidence, 3)) for d in found] == [
            ("dog", 0.9),
            ("cat", 0.85),
        ], model
        for d in found:
            assert d.box == pytest.approx(expected, abs=1e-3), model
        assert check_onnx_model(model, "detr", 64).variant.startswith("detr")

    with pytest.raises(DetectorError) as refused:
        check_onnx_model(rtdetr, "detr", 640)
    assert refused.value.field == "imgsz"


@pytest.fixture(scope="module")
def yolov8_random(tmp_path_factory):
    """yolov8n with random weights, its batch-norm statistics taken from two pictures (so its
    outputs vary with the picture), class biases lowered so a few dozen boxes pass; exported to
    ONNX by ultralytics itself."""
    import cv2
    import torch
    import ultralytics
    from ultralytics import YOLO

    assets = Path(ultralytics.__file__).parent / "assets"
    images = [cv2.imread(str(assets / "bus.jpg")), cv2.imread(str(assets / "zidane.jpg"))]
    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml")
    net = model.model
    batch = torch.stack(
        [
            torch.from_numpy(cv2.resize(i, (640, 640))[..., ::-1].copy()).permute(2, 0, 1) / 255
            for i in images
        ]
    )
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(batch)
    net.eval()
    with torch.no_grad():
        for branch in net.model[-1].cv3:
            branch[-1].bias.fill_(-6.0)
    here = os.getcwd()
    folder = tmp_path_factory.mktemp("export")
    os.chdir(folder)  # an architecture-built model is exported into the working directory
    try:
        exported = folder / model.export(format="onnx", imgsz=640, simplify=False)
    finally:
        os.chdir(here)
    return model, str(exported), images


def test_yolov8_export_matches_ultralytics_predict(yolov8_random):
    model, exported, images = yolov8_random
    conf = 0.1
    detector = load_detector(ModelSpec(exported, conf=conf))
    assert detector.info.variant == "yolov8" and detector.imgsz == 640
    ours = detector.detect(images)
    # rect=False: ultralytics letterboxes into the full 640 x 640 square, as a fixed-size export.
    theirs = model.predict(images, conf=conf, imgsz=640, rect=False, verbose=False)
    total = 0
    for found, result in zip(ours, theirs, strict=True):
        expected = list(
            zip(
                result.boxes.xyxy.tolist(),
                result.boxes.conf.tolist(),
                result.boxes.cls.tolist(),
                strict=True,
            )
        )
        assert len(found) == len(expected)
        total += len(found)
        unmatched = list(found)
        for box, score, cls in expected:
            match = next(
                (
                    d
                    for d in unmatched
                    if d.class_id == int(cls)
                    and abs(d.confidence - score) <= SCORE_TOLERANCE
                    and max(abs(a - b) for a, b in zip(d.box, box, strict=True)) <= BOX_TOLERANCE_PX
                ),
                None,
            )
            assert match is not None, f"no match for ultralytics' {box} {score:.4f} class {cls}"
            unmatched.remove(match)
    assert total >= 5  # the comparison compared something
    assert check_onnx_model(exported, "yolov8", 640).classes == 80
    with pytest.raises(DetectorError) as refused:
        check_onnx_model(exported, "yolox")
    assert refused.value.field == "layout"


def test_the_shipped_demo_model_is_what_its_builder_makes(tmp_path):
    """detectors/models/demo-yolov8.onnx is build_demo_model's output (no unreviewable binary)."""
    from detectors.demo import DEMO_MODEL, build_demo_model

    assert build_demo_model(tmp_path / "demo.onnx").read_bytes() == DEMO_MODEL.read_bytes()
    assert check_onnx_model(str(DEMO_MODEL), "yolov8", 640).classes == 80
