"""``edgectl up``: the whole suite on this machine: database, four services, two edge agents, demo
fleet."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        plain: bool = typer.Option(
            False,
            "--plain",
            help="log lines instead of the live view (default when not a terminal)",
        ),
        data_dir: Path = typer.Option(
            None, "--data-dir", envvar="EDGE_UP_DATA_DIR", help="default ./.edge-data"
        ),
        seed_demo: bool = typer.Option(
            True, "--seed/--no-seed", help="seed the demo fleet (once; idempotent)"
        ),
        sites: int = typer.Option(
            None,
            "--sites",
            min=1,
            max=2,
            envvar="EDGE_UP_SITES",
            help="2: two sites, each with its own master, cluster, database and registry",
        ),
        tls: bool = typer.Option(
            None,
            "--tls/--no-tls",
            envvar="EDGE_UP_TLS",
            help="HTTPS and MQTT over TLS everywhere, with a CA generated in the data folder",
        ),
    ) -> None:
        """Start everything, seed the demo fleet, show what happens; a process that exits is
        started again (backoff); Ctrl-C stops it all (data kept)."""
        from edgectl.stack.config import StackSettings
        from edgectl.stack.run import Stack, StackError

        overrides: dict = {}
        if data_dir:
            overrides["data_dir"] = data_dir
        if sites:
            overrides["sites"] = sites
        if tls is not None:
            overrides["tls"] = tls
        settings = StackSettings(**overrides)
        live = not plain and sys.stdout.isatty()
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(message)s",
            datefmt="%H:%M:%S",
            stream=sys.stderr,
        )
        from shared.logging import NOISY_LOGGERS

        # The operator's view: the stack's own lines, not the libraries' (alembic's migration
        # steps included: "migrations applied" says it once).
        for noisy in (*NOISY_LOGGERS, "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        stack = Stack(settings)

        def _stop(signum, _frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        try:
            stack.start(seed_demo=seed_demo)
            stack.watch(live=live)
        except StackError as exc:
            typer.echo(f"edgectl up: {exc}", err=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:
            pass
        finally:
            stack.stop()
