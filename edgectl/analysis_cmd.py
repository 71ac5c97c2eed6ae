"""``edgectl analysis-worker``: one worker process of the analysis service (services/analysis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    register_analyze(app)

    @app.command("analysis-worker")
    def analysis_worker(
        device: str = typer.Option(
            None, help="cpu, cuda, cuda:0, tensorrt ... (default: ANALYSIS_DEVICE, cpu)"
        ),
        model: str = typer.Option(
            None,
            help="ONNX model, .pt weights or .yaml architecture (default: ANALYSIS_MODEL, else "
            "the demo ONNX model: random weights)",
        ),
        layout: str = typer.Option(
            None, help="ONNX output layout: yolov8, yolox, detr (default: ANALYSIS_LAYOUT)"
        ),
        batch_size: int = typer.Option(
            None, min=1, help="images per forward pass (default: ANALYSIS_BATCH_SIZE)"
        ),
        batch_wait_ms: float = typer.Option(
            None, min=0, help="wait to fill a batch (default: ANALYSIS_BATCH_WAIT_MS)"
        ),
        imgsz: int = typer.Option(
            None, min=32, help="network input size (default: ANALYSIS_IMGSZ, 640)"
        ),
        half: bool = typer.Option(
            None, "--half/--no-half", help="fp16 on CUDA (default: ANALYSIS_HALF)"
        ),
        metrics_port: int = typer.Option(
            None, help="serve this worker's Prometheus metrics on this port"
        ),
        threads: int = typer.Option(
            0, min=0, help="CPU threads for the model (0: the backend's default)"
        ),
    ) -> None:
        """Take jobs from the analysis queue (Redis: EDGE_REDIS_URL) in batches; run the model."""
        from services.analysis.settings import AnalysisSettings
        from services.analysis.worker import main

        overrides: dict[str, Any] = {
            k: v
            for k, v in (
                ("device", device),
                ("model", model),
                ("layout", layout),
                ("batch_size", batch_size),
                ("batch_wait_ms", batch_wait_ms),
                ("imgsz", imgsz),
                ("half", half),
            )
            if v is not None
        }
        try:
            settings = AnalysisSettings(**overrides)
        except ValueError as exc:
            typer.echo(f"edgectl: cannot start the analysis worker: {exc}", err=True)
            raise typer.Exit(2) from exc
        raise typer.Exit(main(settings, metrics_port=metrics_port, threads=threads))


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The parts of a ``multipart/mixed`` answer: (content type, bytes) each."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        parts.append((part.get_content_type(), payload if isinstance(payload, bytes) else b""))
    return parts


def register_analyze(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze(
        images: list[Path] = typer.Argument(..., help="JPEG or PNG files"),
        save: Path = typer.Option(
            None, "--save", help="write each annotated picture here (NAME-annotated.jpg)"
        ),
        as_json: bool = typer.Option(False, "--json", help="print each answer's JSON"),
    ) -> None:
        """Send pictures to the analysis service (EDGE_ANALYSIS_URL, token EDGE_OPERATOR_TOKEN)
        and print each one's detections; --save writes the pictures with the boxes drawn."""
        import json

        from edge_ai.common.http import CallFailed, EdgeSyncClient
        from edgectl.ops.client import base_url, fail, headers

        base = base_url("analysis")
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
        failed = 0
        with EdgeSyncClient("analysis", base, headers=headers(), timeout=120) as client:
            for path in images:
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    typer.echo(f"edgectl: {path}: {exc.strerror or exc}", err=True)
                    failed += 1
                    continue
                kind = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
                try:
                    response = client.request(
                        "POST",
                        "/analyze",
                        content=data,
                        params={"annotate": "true"} if save is not None else None,
                        headers={"Content-Type": kind},
                    )
                except CallFailed as exc:
                    if exc.unreachable:
                        cause = exc.__cause__
                        fail(f"cannot reach analysis at {base}: {cause or type(cause).__name__}")
                    typer.echo(
                        f"edgectl: {path}: analysis answered {exc.status}: {exc.detail}",
                        err=True,
                    )
                    failed += 1
                    continue
                annotated = None
                content_type = response.headers.get("content-type", "")
                if content_type.startswith("multipart/"):
                    parts = dict(parse_multipart(content_type, response.content))
                    result = json.loads(parts["application/json"])
                    annotated = parts.get("image/jpeg")
                else:
                    result = response.json()
                if annotated is not None and save is not None:
                    (save / f"{path.stem}-annotated.jpg").write_bytes(annotated)
                if as_json:
                    typer.echo(json.dumps({"image": str(path), **result}))
                    continue
                found = result.get("fused") or result.get("detections") or []
                counts = ", ".join(f"{n} {c}" for n, c in sorted(result.get("count", {}).items()))
                cached = ", cached" if result.get("cached") else ""
                typer.echo(
                    f"{path}: {len(found)} detections ({result.get('model')}, "
                    f"{result.get('width')}x{result.get('height')}{cached})"
                    + (f": {counts}" if counts else "")
                )
                for d in found:
                    box = ", ".join(f"{v:.0f}" for v in d["box"])
                    typer.echo(f"  {d['class']:<16} {d['confidence']:.3f}  [{box}]")
        if failed:
            raise typer.Exit(1)
