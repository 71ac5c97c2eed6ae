"""The analysis pipeline per model, in one run: yolov8n/s/m, ONNX (onnxruntime) and ``.pt``
(ultralytics/torch), random weights (the architectures ultralytics bundles; ONNX exported from
the same network), from JPEG bytes:

- one predict per frame: the edge's way, one call per picture (decode included);
- end to end: the analysis worker's pipeline (services.analysis.detector.BatchDetector) on
  batches of --batch, decode and pre-process of the next batch in a second thread while this one
  is in the forward pass, as the worker runs it; on CUDA (torch installed) the GPU pipeline
  (nvJPEG decode, letterbox on the GPU, fp16 with --half, NMS on the GPU);
- forward only, the ceiling: the network on input tensors prepared beforehand.

On the CPU it measures what it can; the GPU rows are printed only when CUDA is present.

    .venv/bin/python -m bench.analysis.models --models n --images 32 --batch 8
    .venv/bin/python -m bench.analysis.models --models n,s,m --device cuda --half \\
        --images 512 --batch 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")


def pictures(count: int) -> list[bytes]:
    """bus.jpg / zidane.jpg (ultralytics' own) when installed, else the demo's drawn pictures."""
    try:
        import ultralytics

        root = Path(ultralytics.__file__).parent / "assets"
        sources = [(root / "bus.jpg").read_bytes(), (root / "zidane.jpg").read_bytes()]
    except ImportError:
        from detectors.demo import demo_frames

        sources = demo_frames(2)
    return [sources[i % len(sources)] for i in range(count)]


def export_onnx(arch: str, folder: Path, imgsz: int, half: bool) -> str:
    """``arch`` (yolov8n.yaml ...) built with random weights and exported by ultralytics, with a
    dynamic batch (the worker's batches)."""
    from ultralytics import YOLO

    here = os.getcwd()
    os.chdir(folder)
    try:
        exported = YOLO(arch).export(
            format="onnx", imgsz=imgsz, dynamic=True, simplify=False, half=half, verbose=False
        )
    finally:
        os.chdir(here)
    return str(folder / exported)


def one_predict_per_frame(model: str, blobs: list[bytes], imgsz: int, device: str) -> float:
    import cv2
    import numpy as np

    if model.endswith(".onnx"):
        from detectors import ModelSpec, load_detector

        detector = load_detector(ModelSpec(model, imgsz=imgsz, device=device))

        def once(frame: Any) -> Any:
            return detector.detect([frame])
    else:
        from ultralytics import YOLO

        yolo = YOLO(model)

        def once(frame: Any) -> Any:
            return yolo.predict(frame, imgsz=imgsz, device=device, verbose=False)

    for blob in blobs[:2]:
        once(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR))
    started = time.perf_counter()
    for blob in blobs:
        once(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR))
    return len(blobs) / (time.perf_counter() - started)


def end_to_end(
    model: str, blobs: list[bytes], imgsz: int, batch: int, device: str, half: bool
) -> float:
    from services.analysis.detector import BatchDetector, spec_from

    detector = BatchDetector(spec_from(model, device=device, imgsz=imgsz, half=half))

    def prepare(chunk: list[bytes]) -> Any:
        decoded = [d.image for d in detector.decode(chunk)]
        return detector.preprocess(decoded)

    def run(groups: Any) -> None:
        for _, prepared in groups:
            detector.postprocess(detector.infer(prepared), prepared)

    chunks = [blobs[i : i + batch] for i in range(0, len(blobs), batch)]
    run(prepare(chunks[0]))  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        pending = prefetch.submit(prepare, chunks[0])
        for index in range(len(chunks)):
            groups = pending.result()
            if index + 1 < len(chunks):
                pending = prefetch.submit(prepare, chunks[index + 1])
            run(groups)
    _synchronize(device)
    elapsed = time.perf_counter() - started
    detector.close()
    return len(blobs) / elapsed


def forward_only(
    model: str, blobs: list[bytes], imgsz: int, batch: int, device: str, half: bool
) -> float:
    """The network alone: ONNX Runtime's session, or the fused torch module, on batches
    letterboxed beforehand."""
    import cv2
    import numpy as np

    from detectors import ops

    frames = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in blobs]
    boxed = [ops.letterbox(f, imgsz)[0] for f in frames]
    arrays = [
        ops.to_batch(
            boxed[i : i + batch], rgb=True, scale=1 / 255, imagenet=False, dtype=np.float32
        )
        for i in range(0, len(boxed), batch)
    ]
    if model.endswith(".onnx"):
        from detectors import ModelSpec, load_detector

        detector: Any = load_detector(ModelSpec(model, imgsz=imgsz, device=device, half=half))
        name = detector.info.input.name
        arrays = [a.astype(detector.input_dtype) for a in arrays]

        def forward(x: Any) -> Any:
            return detector._run({name: x})
    else:
        import torch
        from ultralytics import YOLO

        net: Any = YOLO(model).model
        net = net.fuse(verbose=False).to(device if device != "cpu" else "cpu").eval()
        net = net.half() if half else net.float()
        dtype = torch.float16 if half else torch.float32
        arrays = [torch.from_numpy(a).to(device).to(dtype) for a in arrays]

        def forward(x: Any) -> Any:
            with torch.inference_mode():
                return net(x)

    forward(arrays[0])
    _synchronize(device)
    started = time.perf_counter()
    for x in arrays:
        forward(x)
    _synchronize(device)
    return len(blobs) / (time.perf_counter() - started)


def _synchronize(device: str) -> None:
    if device.startswith("cuda") or device.isdigit():
        import torch

        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="n,s,m", help="yolov8 sizes, comma-separated")
    parser.add_argument("--formats", default="onnx,pt")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="auto", help="cpu, cuda, tensorrt; auto: cuda if any")
    parser.add_argument("--half", action="store_true", help="fp16 (GPU only)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    args = parser.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if args.device == "auto" else args.device
    half = args.half and device != "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    card = torch.cuda.get_device_name(0) if cuda else "no CUDA device: CPU figures only"
    blobs = pictures(args.images)
    print(
        f"{args.images} JPEGs, imgsz {args.imgsz}, batch {args.batch}, device {device}"
        f"{' fp16' if half else ''} ({card}); random weights",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.models.split(","):
            arch = f"yolov8{size.strip()}.yaml"
            for fmt in args.formats.split(","):
                model = arch if fmt == "pt" else export_onnx(arch, Path(tmp), args.imgsz, False)
                label = f"yolov8{size} {fmt}"
                one = one_predict_per_frame(model, blobs, args.imgsz, device)
                e2e = end_to_end(model, blobs, args.imgsz, args.batch, device, half)
                ceiling = forward_only(model, blobs, args.imgsz, args.batch, device, half)
                rows.append((label, one, e2e, ceiling))
                print(
                    f"{label}: one predict per frame {one:.1f}, end to end {e2e:.1f}, "
                    f"forward only {ceiling:.1f} images/s",
                    flush=True,
                )
    print()
    print(
        "| model | one predict per frame | end to end (JPEG bytes) | forward only | "
        "end to end / ceiling | end to end / one predict |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, one, e2e, ceiling in rows:
        print(
            f"| {label} | {one:.1f} | {e2e:.1f} | {ceiling:.1f} | {100 * e2e / ceiling:.0f} % | "
            f"{e2e / one:.1f}x |"
        )


if __name__ == "__main__":
    main()
