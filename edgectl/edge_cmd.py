"""``edgectl edge ...``: run the edge programs and build their AI packages.

``edgectl edge weather|monitoring|yolo [OPTIONS]`` passes its options to the program
(``edgectl edge weather --help`` lists them); the same runs as ``python -m edge_ai.weather``.
"""

from __future__ import annotations

from pathlib import Path

import typer

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def register(app: typer.Typer) -> None:
    edge = typer.Typer(
        help="Edge programs (weather AI, monitoring AI, YOLO worker) and their AI packages.",
        no_args_is_help=True,
    )

    @edge.command(context_settings=_PASS_THROUGH)
    def weather(ctx: typer.Context) -> None:
        """Weather AI (ai_class 00): posts /save_edgeData every second. Options: see --help."""
        from edge_ai.weather.app import main

        raise typer.Exit(main(list(ctx.args)))

    @edge.command(context_settings=_PASS_THROUGH)
    def monitoring(ctx: typer.Context) -> None:
        """Monitoring AI (ai_class 01 SUNNY / 02 RAINY): posts /usage every second. Options: see
        --help."""
        from edge_ai.monitoring.app import main

        raise typer.Exit(main(list(ctx.args)))

    @edge.command(context_settings=_PASS_THROUGH)
    def yolo(ctx: typer.Context) -> None:
        """YOLO worker: detections on camera frames, a summary a second to /detections. Options: see
        --help."""
        from edge_ai.yolo.app import main

        raise typer.Exit(main(list(ctx.args)))

    @edge.command("build-packages")
    def build_packages(
        out: Path = typer.Option(..., "--out", help="folder for the archives"),
        only: list[str] = typer.Option(
            None,
            "--only",
            help="package source folders to build (default all): weatherai, monitoring-01, ...",
        ),
        yolo_weights: Path = typer.Option(
            None,
            "--yolo-weights",
            help="real weights (.pt/.onnx) to ship in the YOLO "
            "package instead of the random-weight architecture",
        ),
    ) -> None:
        """Build the AI package archives ({filename}-{ai_class}-{version}.tar.gz) the master
        accepts."""
        from edge_ai.packages.build import PackageBuildError, build_all

        try:
            built = build_all(out, only=only or None, yolo_weights=yolo_weights)
        except PackageBuildError as exc:
            typer.echo(f"edgectl: {exc}", err=True)
            raise typer.Exit(2) from exc
        for pkg in built:
            typer.echo(
                f"{pkg.path}  filename={pkg.filename} version={pkg.version} "
                f"ai_class={pkg.ai_class} condition={pkg.condition}"
            )

    @edge.command("build-agent")
    def build_agent(
        out: Path = typer.Option(..., "--out", help="folder for the wheel"),
    ) -> None:
        """Build the edge agent's own wheel (edge_agent-<version>-py3-none-any.whl, Python 3.8+)
        for boxes without the platform: pip install it, then run edge-agent."""
        from edge_ai.packages.agent_wheel import build_agent_wheel

        typer.echo(str(build_agent_wheel(out)))

    app.add_typer(edge, name="edge")
