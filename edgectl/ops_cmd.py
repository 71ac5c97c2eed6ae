"""Operator verbs: ``edgectl edges``, ``deployments``, ``decisions``, ``explain EDGE``, ``nodes``,
``pin``/``unpin``, ``optimizer`` and ``rollouts`` (one module per noun under ``edgectl/ops/``).

Every read takes ``--json``; an error prints one line (the service's message) and exits 1.
"""

from __future__ import annotations

import typer

from edgectl.ops import control, decisions, deployments, edges, nodes


def register(app: typer.Typer) -> None:
    app.add_typer(edges.app, name="edges")
    app.add_typer(deployments.app, name="deployments")
    app.add_typer(decisions.app, name="decisions")
    app.command("explain")(decisions.explain)
    app.add_typer(nodes.app, name="nodes")
    app.command("pin")(control.pin)
    app.command("unpin")(control.unpin)
    app.add_typer(control.optimizer_app, name="optimizer")
    app.add_typer(control.rollouts_app, name="rollouts")
