"""``edgectl``: one entry point for the services, the edge programs and operator tasks.

Each command group lives in its own module; this file only wires them together.
"""

from __future__ import annotations

import typer

from edgectl import services_cmd

app = typer.Typer(
    help="Edge-AI deployment and optimisation platform.", no_args_is_help=True, add_completion=False
)

services_cmd.register(app)


def _register_optional() -> None:
    """Command groups added by the other areas (registry, ai, agent, edge programs, up)."""
    import importlib

    for module in (
        "registry_cmd",
        "ai_cmd",
        "agent_cmd",
        "edge_cmd",
        "up_cmd",
        "settings_cmd",
        "analysis_cmd",
        "ops_cmd",
    ):
        try:
            mod = importlib.import_module(f"edgectl.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"edgectl.{module}":
                continue
            raise
        mod.register(app)


_register_optional()

if __name__ == "__main__":
    app()
