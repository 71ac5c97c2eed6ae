"""``edgectl deployments list/add/remove/watch``: desired deployments in setup and what the
master observed."""

from __future__ import annotations

import time
from typing import Any

import typer

from edgectl.ops.client import JsonOption, call, console, print_json, read, resolve_edge, table
from shared.contracts.fleet import ObservedState

app = typer.Typer(help="Deployments (desired and observed state).", no_args_is_help=True)

COLUMNS = ["ID", "EDGE", "AI", "FILENAME", "DESIRED", "OBSERVED", "GEN", "RESTARTS", "BY"]


def _row(d: dict[str, Any]) -> list[Any]:
    return [
        d["id"],
        d["edge_id"],
        d["ai_id"],
        d["filename"],
        d["desired"],
        d["observed"],
        f"{d['observed_generation']}/{d['generation']}",
        d["restarts"],
        d["requested_by"],
    ]


def _list(edge: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": 10_000}
    if edge is not None:
        params["edge_id"] = resolve_edge(edge)["id"]
    body: dict[str, Any] = read("setup", "/deployments", params)
    return body


@app.command("list")
def deployments_list(
    edge: str = typer.Option(None, "--edge", help="only this edge (id, name or nid)"),
    as_json: bool = JsonOption,
) -> None:
    """Deployments: id, edge, AI, desired and observed state, generations, restarts."""
    body = _list(edge)
    if as_json:
        print_json(body)
        return
    console().print(table(None, COLUMNS, [_row(d) for d in body["items"]]))


@app.command("add")
def deployments_add(
    edge: str = typer.Argument(..., help="edge id, name or nid"),
    ai: int = typer.Argument(..., help="AI package id (edgectl ai list)"),
    allow_multiple: bool = typer.Option(
        False, "--allow-multiple", help="keep other AIs of this filename on the edge"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Deploy an AI on an edge (the master reconciles it onto the edge)."""
    edge_id = resolve_edge(edge)["id"]
    body = {"edge_id": edge_id, "ai_id": ai, "allow_multiple": allow_multiple}
    created = call("POST", "setup", "/deployments", body=body)
    if as_json:
        print_json(created)
        return
    typer.echo(
        f"deployment {created['id']}: {created['filename']} on edge {edge_id}, "
        f"desired {created['desired']}, observed {created['observed']}"
    )


@app.command("remove")
def deployments_remove(
    deployment: int = typer.Argument(..., help="deployment id"),
    as_json: bool = JsonOption,
) -> None:
    """Undeploy: the deployment's desired state becomes removed; the master stops it."""
    removed = call("DELETE", "setup", f"/deployments/{deployment}")
    if as_json:
        print_json(removed)
        return
    typer.echo(f"deployment {deployment}: desired {removed['desired']}")


def _state(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["desired"], d["observed"], d["observed_generation"], d["generation"], d["restarts"])


def _settled(d: dict[str, Any]) -> bool:
    return d["observed_generation"] >= d["generation"] and d["observed"] in (
        ObservedState.RUNNING,
        ObservedState.FAILED,
        ObservedState.REMOVED,
    )


@app.command("watch")
def deployments_watch(
    edge: str = typer.Option(None, "--edge", help="only this edge (id, name or nid)"),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="seconds between reads"),
    until_settled: bool = typer.Option(
        False, "--until-settled", help="stop once every deployment observed its generation"
    ),
    timeout: float = typer.Option(None, "--timeout", help="stop after this many seconds"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per change (JSON lines)"),
) -> None:
    """One line per deployment whose state changed (all of them first), until Ctrl-C."""
    import json

    seen: dict[int, tuple[Any, ...]] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        items = _list(edge)["items"]
        for d in items:
            if seen.get(d["id"]) != _state(d):
                seen[d["id"]] = _state(d)
                if as_json:
                    typer.echo(json.dumps(d, default=str))
                else:
                    typer.echo(
                        f"deployment {d['id']} edge {d['edge_id']} {d['filename']} (AI "
                        f"{d['ai_id']}): desired {d['desired']}, observed {d['observed']}, "
                        f"generation {d['observed_generation']}/{d['generation']}, "
                        f"restarts {d['restarts']}"
                    )
        if until_settled and all(_settled(d) for d in items):
            return
        if deadline is not None and time.monotonic() >= deadline:
            if until_settled:
                raise typer.Exit(1)
            return
        time.sleep(interval)
