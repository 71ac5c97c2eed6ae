"""The analysis worker's GPU pipeline (CUDA, torch + torchvision: the ``edge`` extra).

Every stage on the GPU, none of the pixels through the host after the JPEG bytes:

- decode: ``torchvision.io.decode_jpeg`` on a list of JPEGs with ``device="cuda"`` (batched
  nvJPEG); a PNG or a JPEG nvJPEG refuses is decoded by OpenCV on the CPU and uploaded;
- letterbox: ``interpolate`` (bilinear) into a 114-grey canvas, as ultralytics pads, in fp16 when
  asked; on a CUDA stream of its own, so the worker's prefetch thread prepares batch N+1 while
  batch N is in the forward pass (an event orders the two);
- forward: the torch module (``.pt``, ultralytics backend, fused, fp16 when asked), or the
  ONNX Runtime session (CUDA or TensorRT provider) fed by IO binding straight from the canvas and
  writing into a torch tensor;
- post-process (YOLOv8 layout): scores, ``torchvision.ops.batched_nms`` and the boxes back to each
  image's pixels on the GPU; one small copy to the host per batch (the kept rows). Other ONNX
  layouts (YOLOX, DETR) copy their outputs back and use the CPU post-processing.

Not measured in this repository's CI (no GPU); ``bench/analysis`` measures it where CUDA is.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from detectors.base import Detection, Detector, Prepared
from detectors.ops import PAD_VALUE
from detectors.spec import ModelSpec


class GpuPipeline:
    def __init__(self, detector: Detector, spec: ModelSpec):
        import torch

        self.torch = torch
        self.detector = detector
        self.spec = spec
        index = 0
        device = spec.device or "cuda"
        tail = device.split(":")[-1]
        if tail.isdigit():
            index = int(tail)
        self.device = torch.device("cuda", index)
        self.half = bool(spec.half)
        self.dtype = torch.float16 if self.half else torch.float32
        self.imgsz = detector.imgsz
        self.side = torch.cuda.Stream(device=self.device)  # the prefetch thread's stream
        self.names = detector.class_names
        self.net: Any = None
        if detector.backend == "ultralytics":
            net: Any = detector.model.model  # type: ignore[attr-defined]
            net = net.fuse(verbose=False) if hasattr(net, "fuse") else net
            net = net.to(self.device).eval()
            self.net = net.half() if self.half else net.float()
            self.layout = "yolov8"
            self.center, self.rgb, self.scale, self.stretch = True, True, 1 / 255, False
        else:
            info = detector.info  # type: ignore[attr-defined]
            self.layout = "yolov8" if info.variant == "yolov8" else "cpu-finish"
            self.center = detector.center  # type: ignore[attr-defined]
            self.rgb = detector.rgb  # type: ignore[attr-defined]
            self.scale = detector.scale  # type: ignore[attr-defined]
            self.stretch = detector.fit == "stretch"  # type: ignore[attr-defined]
            self.imagenet = detector.imagenet  # type: ignore[attr-defined]
            # The session's input type decides the canvas' (an fp32 model takes fp32).
            self.dtype = torch.float16 if detector.input_dtype == np.float16 else torch.float32  # type: ignore[attr-defined]

    # Stage 1: decode.
    def decode(self, blobs: Sequence[bytes]) -> List[Tuple[Any, Optional[str], Tuple[int, int]]]:
        torch = self.torch
        from torchvision.io import decode_jpeg

        out: List[Tuple[Any, Optional[str], Tuple[int, int]]] = [(None, None, (0, 0))] * len(blobs)
        jpegs = [i for i, b in enumerate(blobs) if b[:2] == b"\xff\xd8"]
        with torch.cuda.stream(self.side):
            if jpegs:
                datas = [torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8) for i in jpegs]
                try:
                    images = decode_jpeg(datas, device=self.device)
                except RuntimeError:  # one bad JPEG fails the batch: one at a time then
                    images = []
                    for data in datas:
                        try:
                            images.append(decode_jpeg(data, device=self.device))
                        except RuntimeError:
                            images.append(None)
                for i, image in zip(jpegs, images):
                    if image is not None:
                        out[i] = (image, None, (int(image.shape[1]), int(image.shape[2])))
            for i, blob in enumerate(blobs):
                if out[i][0] is None:  # PNG, or what nvJPEG refused: OpenCV, then upload
                    out[i] = self._cpu_decode(blob)
        return out

    def _cpu_decode(self, blob: bytes) -> Tuple[Any, Optional[str], Tuple[int, int]]:
        import cv2

        if not blob:
            return None, "the image is empty", (0, 0)
        image = cv2.imdecode(np.frombuffer(blob, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            return None, "the image cannot be decoded as JPEG or PNG", (0, 0)
        rgb = np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))
        tensor = self.torch.from_numpy(rgb).pin_memory().to(self.device, non_blocking=True)
        return tensor, None, (int(image.shape[0]), int(image.shape[1]))

    # Stage 2: letterbox (or stretch) into one batch tensor, on the side stream.
    def prepare(self, images: Sequence[Any]) -> Prepared:
        torch = self.torch
        import torch.nn.functional as F

        size = self.imgsz
        shapes, scales = [], []
        with torch.cuda.stream(self.side):
            canvas = torch.full(
                (len(images), 3, size, size), PAD_VALUE, dtype=self.dtype, device=self.device
            )
            for k, image in enumerate(images):  # (3, H, W) uint8, RGB
                h, w = int(image.shape[1]), int(image.shape[2])
                shapes.append((h, w))
                pixels = image[None].to(self.dtype)
                if self.stretch:
                    canvas[k] = F.interpolate(pixels, size=(size, size), mode="bilinear")[0]
                    scales.append((size / w, size / h, 0.0, 0.0))
                    continue
                gain = min(size / h, size / w)
                nw, nh = round(w * gain), round(h * gain)
                if (nw, nh) != (w, h):
                    pixels = F.interpolate(pixels, size=(nh, nw), mode="bilinear")
                if self.center:
                    top, left = round((size - nh) / 2 - 0.1), round((size - nw) / 2 - 0.1)
                else:
                    top = left = 0
                canvas[k, :, top : top + nh, left : left + nw] = pixels[0]
                pad_x = round((size - w * gain) / 2 - 0.1) if self.center else 0
                pad_y = round((size - h * gain) / 2 - 0.1) if self.center else 0
                scales.append((gain, gain, float(pad_x), float(pad_y)))
            if not self.rgb:
                canvas = canvas.flip(1)
            if self.scale != 1.0:
                canvas.mul_(self.scale)
            if getattr(self, "imagenet", False):
                mean = torch.tensor([0.485, 0.456, 0.406], device=self.device, dtype=self.dtype)
                std = torch.tensor([0.229, 0.224, 0.225], device=self.device, dtype=self.dtype)
                canvas = (canvas - mean[None, :, None, None]) / std[None, :, None, None]
            ready = torch.cuda.Event()
            ready.record(self.side)
        return Prepared(canvas, shapes, scales, {"ready": ready})

    # Stage 3: forward.
    def forward(self, prepared: Prepared) -> Any:
        torch = self.torch
        stream = torch.cuda.current_stream(self.device)
        stream.wait_event(prepared.extra["ready"])
        x = prepared.tensor
        if self.net is not None:
            with torch.inference_mode():
                out = self.net(x)
            return out[0] if isinstance(out, (list, tuple)) else out
        # ONNX Runtime runs on its own CUDA stream: the canvas must be complete before it reads.
        stream.synchronize()
        outs = self.detector._run({self.detector.info.input.name: x})  # type: ignore[attr-defined]
        if self.layout == "yolov8":
            return torch.from_numpy(outs[0]).to(self.device, non_blocking=True)
        return outs

    # Stage 4: post-process.
    def finish(self, raw: Any, prepared: Prepared) -> List[List[Detection]]:
        if self.layout != "yolov8":
            return self.detector.finish(raw, prepared)
        torch = self.torch
        from torchvision.ops import batched_nms

        s = self.spec
        pred = raw.float().transpose(1, 2)  # (B, N, 4 + nc)
        scores_all, classes_all = pred[..., 4:].max(2)
        rows: List[Any] = []
        for k in range(pred.shape[0]):
            keep = scores_all[k] > s.conf
            boxes_xywh = pred[k, keep, :4]
            scores, classes = scores_all[k, keep], classes_all[k, keep]
            if scores.numel() > 30000:
                top = scores.topk(30000).indices
                boxes_xywh, scores, classes = boxes_xywh[top], scores[top], classes[top]
            boxes = torch.cat(
                [
                    boxes_xywh[:, :2] - boxes_xywh[:, 2:] / 2,
                    boxes_xywh[:, :2] + boxes_xywh[:, 2:] / 2,
                ],
                1,
            )
            kept = batched_nms(boxes, scores, classes, s.iou)[: s.max_det]
            boxes, scores, classes = boxes[kept], scores[kept], classes[kept]
            gx, gy, px, py = prepared.scales[k]
            h, w = prepared.shapes[k]
            boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - px) / gx).clamp(0, w)
            boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - py) / gy).clamp(0, h)
            rows.append(torch.cat([boxes, scores[:, None], classes[:, None].float()], 1))
        answers = []
        for table in [r.cpu().tolist() for r in rows]:  # the only copy back
            found = []
            for x1, y1, x2, y2, score, cls in table:
                cid = int(cls)
                found.append(
                    Detection(self.names.get(cid, str(cid)), cid, float(score), (x1, y1, x2, y2))
                )
            answers.append(found)
        return answers
