"""The onnxruntime backend: CPU, CUDA or TensorRT execution providers, each layout's own
post-processing (detectors.ops), IO binding when the model runs on a GPU."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from detectors import ops
from detectors.base import Detection, Detector, DetectorError, Prepared
from detectors.labels import load_labels
from detectors.layouts import LayoutInfo, describe, ports
from detectors.spec import ModelSpec

log = logging.getLogger("detectors.onnx")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


def device_id(device: str) -> int:
    match = re.search(r"(\d+)$", device)
    return int(match.group(1)) if match else 0


def choose_providers(device: str, available: Sequence[str], half: bool) -> List[Any]:
    """onnxruntime providers for ``device``: cpu; cuda, cuda:N, N; tensorrt, tensorrt:N.
    A GPU asked for that this onnxruntime build lacks is an error, not a silent CPU run."""
    kind = device.split(":")[0].lower()
    if kind == "cpu":
        return [CPU]
    gpu = device_id(device)
    if kind in ("cuda", "gpu") or kind.isdigit():
        wanted = [CUDA]
        chain: List[Any] = [(CUDA, {"device_id": gpu}), CPU]
    elif kind in ("tensorrt", "trt"):
        wanted = [TENSORRT, CUDA]
        cache = os.environ.get("DETECTORS_TRT_CACHE", os.path.expanduser("~/.cache/detectors-trt"))
        trt = {
            "device_id": gpu,
            "trt_fp16_enable": half,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
        }
        chain = [(TENSORRT, trt), (CUDA, {"device_id": gpu}), CPU]
    else:
        raise DetectorError(
            "device {!r}: expected cpu, cuda, cuda:N or tensorrt".format(device), "device"
        )
    missing = [p for p in wanted if p not in available]
    if missing:
        raise DetectorError(
            "device {}: onnxruntime here has no {} (it has {}; install onnxruntime-gpu)".format(
                device, ", ".join(missing), ", ".join(available)
            ),
            "device",
        )
    return chain


class OnnxDetector(Detector):
    backend = "onnxruntime"

    def __init__(self, spec: ModelSpec):
        import onnxruntime as ort

        self.spec = spec
        self.name = Path(spec.model).stem
        options = ort.SessionOptions()
        if spec.threads:
            options.intra_op_num_threads = spec.threads
        asked = spec.device or "cpu"
        providers = choose_providers(asked, ort.get_available_providers(), spec.half)
        model: Any = spec.model
        if spec.half and providers[0] != CPU and providers[0][0] != TENSORRT:
            model = _fp16_model(spec.model)
        try:
            self.session = ort.InferenceSession(model, options, providers=providers)
        except Exception as exc:  # onnxruntime's own exception types
            raise DetectorError(
                "model {}: does not load in onnxruntime: {}".format(spec.model, exc), "model"
            ) from None
        self.info: LayoutInfo = describe(
            spec.resolved_layout(),
            ports(self.session.get_inputs()),
            ports(self.session.get_outputs()),
        )
        if spec.imgsz and self.info.imgsz and spec.imgsz != self.info.imgsz:
            raise DetectorError(
                "imgsz {}: the model's input is {} px".format(spec.imgsz, self.info.imgsz), "imgsz"
            )
        self.imgsz = self.info.imgsz or spec.imgsz or 640
        self.on_gpu = self.session.get_providers()[0] != CPU
        self.device = asked if self.on_gpu else "cpu"
        self.device_id = device_id(asked)
        self.input_dtype = np.float16 if self.info.input.dtype == "tensor(float16)" else np.float32
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.class_names = load_labels(spec.labels, self.info.classes)
        variant = self.info.variant
        # How each family expects its input: ultralytics letterboxes centred (RGB, /255); YOLOX
        # pads right/bottom and takes BGR 0-255; DETR exports take a stretched RGB image /255,
        # RF-DETR normalised with ImageNet's mean and deviation.
        self.fit = "stretch" if variant.startswith("detr") else "letterbox"
        self.center = variant != "yolox"
        self.rgb = variant != "yolox"
        self.scale = 1.0 if variant == "yolox" else 1 / 255
        self.imagenet = variant == "detr-rfdetr"
        if variant == "yolox":
            self.grid, self.strides = ops.yolox_grid(self.imgsz)
        log.info(
            "%s: onnxruntime %s, layout %s (%s), %d px, %d classes, providers %s",
            self.name,
            ort.__version__,
            spec.resolved_layout(),
            variant,
            self.imgsz,
            len(self.class_names),
            ", ".join(self.session.get_providers()),
        )

    # Stages.
    def prepare(self, images: Sequence[Any]) -> Prepared:
        fitted, scales = [], []
        for image in images:
            if self.fit == "stretch":
                boxed, scale = ops.stretch(image, self.imgsz)
            else:
                boxed, scale = ops.letterbox(image, self.imgsz, center=self.center)
            fitted.append(boxed)
            scales.append(scale)
        tensor = ops.to_batch(
            fitted, rgb=self.rgb, scale=self.scale, imagenet=self.imagenet, dtype=self.input_dtype
        )
        shapes = [(int(i.shape[0]), int(i.shape[1])) for i in images]
        return Prepared(tensor, shapes, scales)

    def forward(self, prepared: Prepared) -> List[np.ndarray]:
        """Raw outputs (one array per output, the whole batch), run in chunks of the model's batch
        size."""
        tensor = prepared.tensor
        step = len(tensor) if self.info.dynamic_batch else self.info.batch
        chunks = []
        for start in range(0, len(tensor), step):
            part = tensor[start : start + step]
            real = len(part)
            if real < step:  # a fixed batch size: the last chunk padded with copies
                part = np.concatenate([part, np.repeat(part[-1:], step - real, axis=0)])
            feeds: Dict[str, Any] = {self.info.input.name: part}
            if self.info.size_input:
                # D-FINE/DEIM scale their boxes by these sizes (w, h): the network's input.
                sizes = np.array([[self.imgsz, self.imgsz]] * len(part), dtype=np.int64)
                feeds[self.info.size_input] = sizes
            outs = self._run(feeds)
            chunks.append([o[:real] for o in outs])
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(self.output_names))]

    def _run(self, feeds: Dict[str, Any]) -> List[np.ndarray]:
        if not self.on_gpu:
            return list(self.session.run(self.output_names, feeds))
        # On a GPU: the inputs copied once into device memory, the outputs left there until
        # the copy back (no per-call staging through onnxruntime's own allocations).
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, value in feeds.items():
            if hasattr(value, "data_ptr"):  # a torch tensor already on the GPU
                binding.bind_input(
                    name,
                    "cuda",
                    self.device_id,
                    np.float16 if str(value.dtype) == "torch.float16" else np.float32,
                    tuple(value.shape),
                    value.data_ptr(),
                )
            else:
                binding.bind_ortvalue_input(
                    name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", self.device_id)
                )
        for name in self.output_names:
            binding.bind_output(name, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def finish(self, raw: Any, prepared: Prepared) -> List[List[Detection]]:
        if not self.class_names and self.info.variant in ("yolov8", "yolox"):
            # Classes left dynamic in the export: counted from the first output.
            yolov8 = self.info.variant == "yolov8"
            count = raw[0].shape[1] - 4 if yolov8 else raw[0].shape[2] - 5
            self.class_names = load_labels(self.spec.labels, count)
        answers = []
        for index, (shape, scale) in enumerate(zip(prepared.shapes, prepared.scales)):
            rows = self.rows(raw, index, scale, shape)
            answers.append(self.detections(rows))
        return answers

    def rows(
        self,
        raw: List[np.ndarray],
        index: int,
        scale: Tuple[float, float, float, float],
        shape: Tuple[int, int],
    ) -> np.ndarray:
        """(n, 6) x1, y1, x2, y2, score, class in the image's pixels for image ``index``."""
        s, variant = self.spec, self.info.variant
        iou: Optional[float] = s.iou
        if variant == "yolov8":
            boxes, scores, classes = ops.decode_yolov8(raw[0][index].astype(np.float32))
        elif variant == "yolox":
            boxes, scores, classes = ops.decode_yolox(
                raw[0][index].astype(np.float32), self.grid, self.strides
            )
        elif variant == "detr-dfine":
            out = dict(zip(self.output_names, raw))
            boxes = out["boxes"][index].astype(np.float32)
            scores = out["scores"][index].astype(np.float32)
            classes = out["labels"][index].astype(np.int64)
            iou = None
        else:
            if variant == "detr-rfdetr":
                out = dict(zip(self.output_names, raw))
                cxcywh = out["dets"][index].astype(np.float32)
                probs = ops.sigmoid(out["labels"][index].astype(np.float32))
            else:
                pred = raw[0][index].astype(np.float32)
                cxcywh, probs = pred[:, :4], pred[:, 4:]
            classes = probs.argmax(1)
            scores = probs[np.arange(len(probs)), classes]
            boxes = ops.xywh_to_xyxy(cxcywh) * self.imgsz  # normalised -> network pixels
            iou = None
        rows = ops.select(boxes, scores, classes, conf=s.conf, iou=iou, max_det=s.max_det)
        rows[:, :4] = ops.unscale(rows[:, :4], scale, shape)
        return rows

    def detections(self, rows: np.ndarray) -> List[Detection]:
        names = self.class_names
        out = []
        for x1, y1, x2, y2, score, cls in rows.tolist():
            cid = int(cls)
            out.append(Detection(names.get(cid, str(cid)), cid, float(score), (x1, y1, x2, y2)))
        return out


def _fp16_model(path: str) -> Any:
    """The model converted to fp16 for the CUDA provider (inputs and outputs stay fp32); the fp32
    model when the converter (the ``onnx`` package) is missing or the model is fp16 already."""
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        log.warning("fp16 asked, but the onnx package is missing: running fp32")
        return path
    model = onnx.load(path)
    converted = convert_float_to_float16(model, keep_io_types=True)
    return converted.SerializeToString()
