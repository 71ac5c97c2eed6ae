"""``edgectl nodes state/series``: node state and history as the VMS sees it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer

from edgectl.ops.client import JsonOption, console, edge_path, print_json, read, request, table

app = typer.Typer(help="Node state as the VMS sees it.", no_args_is_help=True)


@app.command("state")
def nodes_state(
    nids: str = typer.Option(None, "--nids", help="comma list of node ids; default all"),
    as_json: bool = JsonOption,
) -> None:
    """Every node: condition, cpu and memory, last seen, stale or not."""
    body = read("vms", "/nodes/state", {"nids": nids} if nids else None)
    if as_json:
        print_json(body)
        return
    rows = []
    for n in body["items"]:
        usage = n.get("usage") or {}
        rows.append(
            [
                n["nid"],
                n.get("condition"),
                usage.get("cpu"),
                usage.get("memory"),
                n.get("last_seen"),
                "stale" if n.get("stale") else "fresh",
                n.get("known"),
            ]
        )
    columns = ["NID", "CONDITION", "CPU", "MEMORY", "LAST SEEN", "STALE", "KNOWN"]
    console().print(table(None, columns, rows))


@app.command("series")
def nodes_series(
    node: str = typer.Argument(..., help="node id, or the edge's id or name"),
    kind: str = typer.Option("usage", "--kind", help="usage, environment or detections"),
    start: str = typer.Option(None, "--start", help="ISO 8601; default end - 1 h"),
    end: str = typer.Option(None, "--end", help="ISO 8601; default now"),
    step: str = typer.Option("60s", "--step", help="bucket: seconds or 30s, 5m, 1h, 1d"),
    as_json: bool = JsonOption,
) -> None:
    """A node's observations over a time range, one row per bucket."""
    params: dict[str, Any] = {"kind": kind, "step": step}
    if start:
        params["start"] = start
    if end:
        params["end"] = end
    edge = request("GET", "setup", edge_path(node))  # an edge's id or name: its nid
    nid = edge.json()["nid"] if edge.status_code == 200 else node
    body = read("vms", f"/nodes/{quote(nid, safe='')}/series", params)
    if as_json:
        print_json(body)
        return
    points = body["points"]
    columns = sorted({k for p in points for k in p if k != "t"})
    rows = [[p["t"], *(p.get(c) for c in columns)] for p in points]
    title = f"{body['nid']} {body['kind']} every {body['step_s']:g}s"
    console().print(table(title, ["T", *(c.upper() for c in columns)], rows))
    if not points:
        typer.echo(f"no {kind} points between {body['start']} and {body['end']}")
