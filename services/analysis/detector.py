"""The worker's model: a batch of encoded images in, one list of detections per image out.

The stages are separate so that the worker can overlap them (decode and pre-process of the next
batch run in threads while this batch is on the accelerator) and time each one:
decode (JPEG/PNG bytes -> BGR array, OpenCV), pre-process (letterbox within ``imgsz``, group by
shape, stack, to the device, scale), inference (one forward pass per shape in the batch), NMS
(ultralytics' own, per
image, boxes scaled back to each image's size).

The network is loaded the way the edge's YOLO worker loads it (edge_ai.yolo.model.Detector:
offline, weights never downloaded, an architecture file gives random weights).
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.analysis import Detection


@dataclass
class Decoded:
    """An image ready for pre-processing, or why it is not."""

    image: Any | None  # np.ndarray (H, W, 3) BGR
    error: str | None = None


class BatchDetector:
    def __init__(
        self,
        spec: str,
        *,
        device: str = "cpu",
        imgsz: int = 640,
        conf: float = 0.25,
        iou: float = 0.7,
        half: bool = False,
        max_det: int = 300,
        threads: int = 4,
    ):
        from edge_ai.yolo.model import Detector, prepare_offline_environment

        prepare_offline_environment(Path(tempfile.gettempdir()) / "edge-analysis-yolo")
        import torch

        loaded = Detector(spec, imgsz=imgsz, device=device, min_conf=conf, max_det=max_det)
        self.torch = torch
        self.device = torch.device(device)
        self.half = half and self.device.type == "cuda"
        net: Any = loaded.model.model  # the torch module (ultralytics types it loosely)
        net = net.fuse(verbose=False) if hasattr(net, "fuse") else net
        net = net.to(self.device).eval()
        self.net = net.half() if self.half else net.float()
        self.stride = int(max(getattr(net, "stride", [32])))
        self.class_names = loaded.class_names
        self.model_name = Path(spec).stem
        self.imgsz = imgsz
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
        from ultralytics.data.augment import LetterBox

        self.letterbox = LetterBox(new_shape=(imgsz, imgsz), auto=True, stride=self.stride)

    # Stage 1: decode (threads; OpenCV releases the GIL).
    def decode(self, blobs: list[bytes]) -> list[Decoded]:
        return list(self.pool.map(decode_image, blobs))

    # Stage 2: pre-process. Each image is letterboxed to its smallest stride-aligned rectangle
    # within imgsz (as ultralytics' own predict does for one image); images of the same shape
    # (every frame of one camera) share a tensor, so a batch is one forward pass per shape.
    def preprocess(self, images: list[Any]) -> list[tuple[list[int], Any]]:
        boxed = list(self.pool.map(self.letterboxed, images))
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(boxed):
            groups.setdefault(image.shape, []).append(index)
        return [
            (indices, self.to_tensor([boxed[i] for i in indices])) for indices in groups.values()
        ]

    def letterboxed(self, image: np.ndarray) -> np.ndarray:
        boxed = self.letterbox(image=image)
        assert isinstance(boxed, np.ndarray)  # given an image (no labels), LetterBox returns one
        return boxed

    def to_tensor(self, boxed: list[Any]) -> Any:
        batch = np.stack(boxed)[..., ::-1].transpose(0, 3, 1, 2)  # BGR -> RGB, BHWC -> BCHW
        tensor = self.torch.from_numpy(np.ascontiguousarray(batch)).to(
            self.device, non_blocking=True
        )
        tensor = tensor.half() if self.half else tensor.float()
        return tensor / 255.0

    # Stage 3: one forward pass.
    def infer(self, tensor: Any) -> Any:
        with self.torch.inference_mode():
            out = self.net(tensor)
        return out[0] if isinstance(out, (list, tuple)) else out

    # Stage 4: NMS and boxes back to each image's own size.
    def nms(
        self, preds: Any, input_shape: tuple[int, int], shapes: list[tuple[int, int]]
    ) -> list[list[Detection]]:
        from ultralytics.utils import nms, ops

        kept = nms.non_max_suppression(preds, self.conf, self.iou, max_det=self.max_det)
        answers: list[list[Detection]] = []
        for det, shape in zip(kept, shapes, strict=True):
            if not len(det):
                answers.append([])
                continue
            det[:, :4] = ops.scale_boxes(input_shape, det[:, :4], shape)
            rows = det[:, :6].float().cpu().tolist()
            answers.append(
                [
                    Detection(
                        class_name=self.class_names.get(int(c), str(int(c))),
                        class_id=int(c),
                        confidence=round(float(s), 4),
                        box=[round(v, 1) for v in (x1, y1, x2, y2)],
                        source="server",
                    )
                    for x1, y1, x2, y2, s, c in rows
                ]
            )
        return answers

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def decode_image(blob: bytes) -> Decoded:
    import cv2

    if not blob:
        return Decoded(None, "the image is empty")
    if blob.startswith(b"\xff\xd8"):
        # Strict: libjpeg-turbo's warnings are refusals. A truncated JPEG with an end marker
        # appended ("premature end of data segment") would otherwise be padded and analysed.
        import simplejpeg

        try:
            return Decoded(simplejpeg.decode_jpeg(blob, colorspace="BGR", strict=True))
        except ValueError as exc:
            return Decoded(None, f"the JPEG is corrupt: {exc}")
    image = cv2.imdecode(np.frombuffer(blob, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return Decoded(None, "the image cannot be decoded as JPEG or PNG")
    return Decoded(image)


def torch_threads(count: int) -> None:
    """Intra-op threads of the CPU backend (a worker on a shared machine should not take all)."""
    import torch

    if count > 0:
        torch.set_num_threads(count)
        os.environ.setdefault("OMP_NUM_THREADS", str(count))
