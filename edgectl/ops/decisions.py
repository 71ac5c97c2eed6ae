"""``edgectl decisions list/watch`` and ``edgectl explain EDGE``: the optimizer's decision log
and why an edge runs what it runs."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import typer
from rich.markup import escape

from edgectl.ops.client import (
    EdgeArgument,
    JsonOption,
    console,
    fields_table,
    print_json,
    read,
    table,
)

app = typer.Typer(help="The optimizer's decision log.", no_args_is_help=True)

COLUMNS = ["AT", "POLICY", "EDGE", "ACTION", "OUTCOME", "REASON"]


def row(d: dict[str, Any]) -> list[Any]:
    edge = d.get("edge_name") or d.get("nid") or d.get("edge_id")
    outcome = d["outcome"] + (" (dry run)" if d.get("dry_run") else "")
    return [d["at"], d["policy"], edge, d["action"], outcome, d["reason"]]


def _params(edge: str | None, policy: str | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if edge is not None:
        params["edge"] = edge
    if policy is not None:
        params["policy"] = policy
    return params


@app.command("list")
def decisions_list(
    edge: str = typer.Option(None, "--edge", help="only this edge (id, name or nid)"),
    policy: str = typer.Option(None, "--policy", help="only this policy"),
    limit: int = typer.Option(50, "--limit", min=1, help="at most this many, newest first"),
    as_json: bool = JsonOption,
) -> None:
    """The decisions, newest first."""
    body = read("optimizer", "/decisions", _params(edge, policy, limit))
    if as_json:
        print_json(body)
        return
    console().print(table(None, COLUMNS, [row(d) for d in body["items"]]))


@app.command("watch")
def decisions_watch(
    edge: str = typer.Option(None, "--edge", help="only this edge (id, name or nid)"),
    policy: str = typer.Option(None, "--policy", help="only this policy"),
    last: int = typer.Option(10, "--last", min=0, help="show this many earlier decisions first"),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="seconds between reads"),
    timeout: float = typer.Option(None, "--timeout", help="stop after this many seconds"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per decision (JSON lines)"),
) -> None:
    """New decisions as they are made, oldest first, one line each, until Ctrl-C."""
    seen: set[str] = set()
    first = True
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        items = read("optimizer", "/decisions", _params(edge, policy, 200))["items"]
        fresh = [d for d in reversed(items) if d["id"] not in seen]
        seen.update(d["id"] for d in items)
        if first:
            fresh = fresh[len(fresh) - last :] if last else []
            first = False
        for d in fresh:
            if as_json:
                typer.echo(json.dumps(d, default=str))
            else:
                typer.echo(" | ".join(str(v) for v in row(d)))
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(interval)


def explain(edge: str = EdgeArgument, as_json: bool = JsonOption) -> None:
    """Why an edge runs what it runs: its deployments, the decisions behind them, its state."""
    body = read("optimizer", f"/edges/{quote(edge, safe='')}/explain")
    if as_json:
        print_json(body)
        return
    out = console()
    pinned = "pinned" if body["pinned"] else "not pinned"
    out.print(
        f"Edge {body['edge_id']} {escape(body['name'])} (nid {escape(body['nid'])}): "
        f"{escape(str(body['status']))}, {pinned}"
    )
    for blocked in body.get("blocked") or []:
        policies = ", ".join(blocked["policies"])
        out.print(f"[bold yellow]blocked ({escape(policies)}):[/] {escape(blocked['reason'])}")
    node = body.get("node")
    out.print(fields_table(node, "Node") if node else "Node: no state reported")
    if body.get("routing"):
        out.print(fields_table(body["routing"], "Routing"))
    deployments = [
        [
            d["id"],
            d["filename"],
            d["version"],
            d["ai_class"],
            d["observed"],
            f"{d['observed_generation']}/{d['generation']}",
            d["restarts"],
            (d.get("decided_by") or {}).get("reason") or d.get("decision_id") or "operator",
        ]
        for d in body["deployments"]
    ]
    columns = ["ID", "FILENAME", "VERSION", "CLASS", "OBSERVED", "GEN", "RESTARTS", "DECIDED BY"]
    out.print(table("Deployments", columns, deployments) if deployments else "Deployments: none")
    decisions = [row(d) for d in body["recent_decisions"]]
    out.print(
        table("Recent decisions", COLUMNS, decisions) if decisions else "Recent decisions: none"
    )
    if body.get("memory"):
        out.print(fields_table(body["memory"], "Memory"))
