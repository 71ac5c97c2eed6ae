"""Operator verbs: ``edgectl edges``, ``deployments``, ``decisions``, ``explain EDGE``, ``nodes``,
``pin``/``unpin``, ``optimizer``, ``rollouts``, ``clusters``, ``masters``, ``conditions`` and
``policies`` (one module per noun under ``edgectl/ops/``).

Every read takes ``--json``; an error prints one line (the service's message) and exits 1.
"""

from __future__ import annotations

import typer

from edgectl.ops import clusters, control, decisions, deployments, edges, nodes, settings


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
    app.add_typer(clusters.clusters_app, name="clusters")
    app.add_typer(clusters.masters_app, name="masters")
    app.add_typer(settings.conditions_app, name="conditions")
    app.add_typer(settings.policies_app, name="policies")
