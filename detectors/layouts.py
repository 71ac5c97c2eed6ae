"""What each output layout looks like from the outside: the model's inputs and outputs checked
against the declared layout (at load, and by the master when a package is uploaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

from detectors.base import DetectorError

YOLOX_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class Port:
    name: str
    shape: List[Any]  # ints, or None/str for dynamic dimensions
    dtype: str  # onnxruntime's type string: tensor(float), tensor(float16), tensor(int64)


@dataclass(frozen=True)
class LayoutInfo:
    layout: str
    variant: str  # yolov8 | yolox | detr-single | detr-rfdetr | detr-dfine
    input: Port
    imgsz: Optional[int]  # fixed input size, None when dynamic
    dynamic_batch: bool
    batch: int  # the fixed batch size (1 when dynamic)
    classes: Optional[int]  # from the output shape, None when dynamic
    size_input: Optional[str] = None  # D-FINE/DEIM: the orig_target_sizes input


def _static(dim: Any) -> Optional[int]:
    return dim if isinstance(dim, int) and dim > 0 else None


def describe(layout: str, inputs: Sequence[Port], outputs: Sequence[Port]) -> LayoutInfo:
    """The model's ports read as ``layout``; DetectorError(field="layout") when they do not fit."""

    def wrong(why: str) -> DetectorError:
        shapes = ", ".join("{}{}".format(o.name, o.shape) for o in outputs)
        return DetectorError(
            "the model's inputs/outputs do not match layout {}: {} (outputs: {})".format(
                layout, why, shapes
            ),
            "layout",
        )

    images = [p for p in inputs if len(p.shape) == 4]
    if len(images) != 1:
        raise wrong("expected one image input (batch, 3, height, width)")
    image = images[0]
    if _static(image.shape[1]) not in (3, None):
        raise wrong("the image input must have 3 channels, has {}".format(image.shape[1]))
    h, w = _static(image.shape[2]), _static(image.shape[3])
    if h != w:
        raise DetectorError(
            "the image input must be square (or dynamic), is {}x{}".format(h, w), "imgsz"
        )
    batch = _static(image.shape[0])
    common = dict(input=image, imgsz=h, dynamic_batch=batch is None, batch=batch or 1)
    others = [p for p in inputs if p is not image]
    if layout in ("yolov8", "yolox"):
        if others:
            raise wrong("expected the image as the only input")
        out = outputs[0].shape if outputs else []
        if len(out) != 3:
            raise wrong("expected one output (batch, channels, anchors)")
        if layout == "yolov8":
            # A dynamic export may leave both dimensions unnamed: read at the first run then.
            channels, anchors = _static(out[1]), _static(out[2])
            if channels is not None and channels < 5:
                raise wrong("expected 4 box values and the class scores in dimension 1")
            if channels is not None and anchors is not None and anchors < channels:
                raise wrong("dimension 1 holds the boxes and classes, dimension 2 the anchors")
            classes = channels - 4 if channels is not None else None
            return LayoutInfo(layout, "yolov8", classes=classes, **common)  # type: ignore[arg-type]
        anchors, channels = _static(out[1]), _static(out[2])
        if channels is not None and channels < 6:
            raise wrong("expected (batch, anchors, 5 + classes)")
        if h is not None and anchors is not None:
            cells = sum((h // s) ** 2 for s in YOLOX_STRIDES)
            if anchors != cells:
                raise wrong(
                    "{} anchors, the grid of strides 8/16/32 at {} px has {}".format(
                        anchors, h, cells
                    )
                )
        classes = channels - 5 if channels is not None else None
        return LayoutInfo(layout, "yolox", classes=classes, **common)  # type: ignore[arg-type]
    if layout != "detr":
        raise DetectorError("unknown layout {!r}".format(layout), "layout")
    names = {o.name: o for o in outputs}
    if {"labels", "boxes", "scores"} <= set(names):
        sizes = [p for p in others if len(p.shape) == 2]
        if len(sizes) != 1:
            raise wrong("labels/boxes/scores outputs need an orig_target_sizes input (batch, 2)")
        return LayoutInfo(
            layout,
            "detr-dfine",
            classes=None,
            size_input=sizes[0].name,
            **common,  # type: ignore[arg-type]
        )
    if others:
        raise wrong("expected the image as the only input")
    if {"dets", "labels"} <= set(names):
        boxes, logits = names["dets"].shape, names["labels"].shape
        if len(boxes) != 3 or _static(boxes[2]) != 4 or len(logits) != 3:
            raise wrong("expected dets (batch, queries, 4) and labels (batch, queries, classes)")
        return LayoutInfo(layout, "detr-rfdetr", classes=_static(logits[2]), **common)  # type: ignore[arg-type]
    if len(outputs) == 1 and len(outputs[0].shape) == 3:
        channels = _static(outputs[0].shape[2])
        if channels is None or channels < 5:
            raise wrong("expected (batch, queries, 4 + classes)")
        return LayoutInfo(layout, "detr-single", classes=channels - 4, **common)  # type: ignore[arg-type]
    raise wrong(
        "expected (batch, queries, 4 + classes) (RT-DETR), dets + labels (RF-DETR) or "
        "labels + boxes + scores with an orig_target_sizes input (D-FINE, DEIM, RT-DETRv2)"
    )


def ports(nodes: Sequence[Any]) -> List[Port]:
    """onnxruntime's NodeArg list as Ports."""
    return [Port(n.name, list(n.shape), n.type) for n in nodes]


def check_onnx_model(path: str, layout: str, imgsz: Optional[int] = None) -> LayoutInfo:
    """Loads ``path`` with onnxruntime (CPU) and checks it against ``layout`` and ``imgsz``:
    what the master runs on an uploaded package's model."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise DetectorError("the model does not load: {}".format(exc), "model") from None
    info = describe(layout, ports(session.get_inputs()), ports(session.get_outputs()))
    if imgsz is not None and info.imgsz is not None and imgsz != info.imgsz:
        raise DetectorError(
            "imgsz {} declared, the model's input is {} px".format(imgsz, info.imgsz), "imgsz"
        )
    return info
