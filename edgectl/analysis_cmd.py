"""``edgectl analysis-worker``: one worker process of the analysis service (services/analysis)."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("analysis-worker")
    def analysis_worker(
        device: str = typer.Option(None, help="cpu, cuda:0 ... (default: ANALYSIS_DEVICE, cpu)"),
        model: str = typer.Option(
            None, help="weights (.pt) or architecture (.yaml) (default: ANALYSIS_MODEL)"
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
            0, min=0, help="CPU threads for the model (0: torch's default)"
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
