"""``edgectl``: one entry point for the services, the edge programs and operator tasks.

Each command group lives in its own module; this file only wires them together.
"""

from __future__ import annotations

import os
import sys

import typer

from edgectl import services_cmd

app = typer.Typer(
    help="Edge-AI deployment and optimisation platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_debug = {"on": os.environ.get("EDGECTL_DEBUG", "") not in ("", "0", "false")}


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="show the traceback of an error instead of one line"
    ),
) -> None:
    if debug:
        _debug["on"] = True


services_cmd.register(app)


def _register_optional() -> None:
    """Command groups added by the other areas (registry, ai, agent, edge programs, up)."""
    import importlib

    for module in (
        "registry_cmd",
        "registry_import",
        "ai_cmd",
        "agent_cmd",
        "edge_cmd",
        "up_cmd",
        "settings_cmd",
        "analysis_cmd",
        "ops_cmd",
        "credentials_cmd",
        "tls_cmd",
    ):
        try:
            mod = importlib.import_module(f"edgectl.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"edgectl.{module}":
                continue
            raise
        mod.register(app)


_register_optional()


def run() -> None:
    """The entry point: an error that no command turned into its own message is one line and
    exit 1 (``--debug`` shows the traceback)."""
    try:
        app()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if _debug["on"] or "--debug" in sys.argv[1:]:
            raise
        from edgectl.errors import one_line

        sys.stderr.write(f"edgectl: {one_line(exc)} (--debug shows the trace)\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
