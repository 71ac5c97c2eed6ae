"""Operator reads: ``edgectl edges list/show``, ``deployments list``, ``decisions list``,
``explain EDGE`` and ``nodes state``.

Service URLs come from EDGE_SETUP_URL, EDGE_OPTIMIZER_URL and EDGE_VMS_URL (the services' own
defaults otherwise); the token from EDGE_OPERATOR_TOKEN when set (reads also work without one
where the services run with EDGE_OPEN_READS=true). Every read takes ``--json``; an error prints
one line (the service's message) and exits 1.
"""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

_DEFAULT_URLS = {
    "setup": ("EDGE_SETUP_URL", "http://127.0.0.1:8001"),
    "optimizer": ("EDGE_OPTIMIZER_URL", "http://127.0.0.1:8003"),
    "vms": ("EDGE_VMS_URL", "http://127.0.0.1:6432"),
}
_JSON_HELP = "print the service's JSON (for scripts)"


def _fail(message: str) -> NoReturn:
    typer.echo(f"edgectl: {message}", err=True)
    raise typer.Exit(1)


def _base_url(service: str) -> str:
    variable, default = _DEFAULT_URLS[service]
    return (os.environ.get(variable) or default).rstrip("/")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if not isinstance(body, dict):
        return json.dumps(body)[:300]
    err = body.get("error")
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if body.get("message"):
        return str(body["message"])
    if body.get("detail"):
        return str(body["detail"])
    return json.dumps(body)[:300]


def _get(service: str, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
    """GET a service route; a service that cannot be reached ends the command with one line."""
    headers = {}
    token = os.environ.get("EDGE_OPERATOR_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = _base_url(service)
    try:
        return httpx.get(f"{base}{path}", params=params, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {service} at {base}: {exc}")


def _read(service: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """The JSON of a read; a refusal ends the command with the service's message."""
    response = _get(service, path, params)
    if response.status_code >= 400:
        _fail(f"{service} answered {response.status_code}: {_error_text(response)}")
    return response.json()


def _print_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, default=str))


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    return console


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, default=str))
    return escape(str(value))


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def resolve_edge(ref: str) -> dict[str, Any]:
    """An edge by id, nid or exact name (setup reads edges by id only; names and nids are
    found through its list filters)."""
    if ref.isdigit():
        response = _get("setup", f"/edges/{ref}")
        if response.status_code == 200:
            edge: dict[str, Any] = response.json()
            return edge
        if response.status_code != 404:
            _fail(f"setup answered {response.status_code}: {_error_text(response)}")
    by_nid = _read("setup", "/edges", {"nid": ref, "limit": 10})["items"]
    if by_nid:
        found: dict[str, Any] = by_nid[0]
        return found
    # ?name= matches a substring: keep the exact match only.
    by_name = _read("setup", "/edges", {"name": ref, "limit": 10_000})["items"]
    exact = [e for e in by_name if e["name"] == ref]
    if not exact:
        _fail(f"no edge with id, name or nid {ref!r}")
    named: dict[str, Any] = exact[0]
    return named


# --- edges ---------------------------------------------------------------------------------------

edges_app = typer.Typer(help="Edges registered in setup.", no_args_is_help=True)


@edges_app.command("list")
def edges_list(as_json: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Every edge: id, name, nid, cluster, status, ip, analysis support."""
    body = _read("setup", "/edges", {"limit": 10_000})
    if as_json:
        _print_json(body)
        return
    rows = [
        [
            e["id"],
            e["name"],
            e["nid"],
            e["cluster_id"],
            e["status"],
            e["ip"],
            e["isSupportAnnalysis"],
        ]
        for e in body["items"]
    ]
    columns = ["ID", "NAME", "NID", "CLUSTER", "STATUS", "IP", "ANALYSIS"]
    _console().print(_table(None, columns, rows))


@edges_app.command("show")
def edges_show(
    edge: str = typer.Argument(..., help="edge id, name or nid"),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """One edge, every field (the camera URL with its credentials masked)."""
    found = resolve_edge(edge)
    if as_json:
        _print_json(found)
        return
    _console().print(_table(None, ["FIELD", "VALUE"], [[k, v] for k, v in found.items()]))


# --- deployments ---------------------------------------------------------------------------------

deployments_app = typer.Typer(
    help="Deployments (desired and observed state).", no_args_is_help=True
)


@deployments_app.command("list")
def deployments_list(
    edge: str = typer.Option(None, "--edge", help="only this edge (id, name or nid)"),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Deployments: id, edge, AI, desired and observed state, generations, restarts."""
    params: dict[str, Any] = {"limit": 10_000}
    if edge is not None:
        params["edge_id"] = resolve_edge(edge)["id"]
    body = _read("setup", "/deployments", params)
    if as_json:
        _print_json(body)
        return
    rows = [
        [
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
        for d in body["items"]
    ]
    columns = ["ID", "EDGE", "AI", "FILENAME", "DESIRED", "OBSERVED", "GEN", "RESTARTS", "BY"]
    _console().print(_table(None, columns, rows))


# --- decisions -----------------------------------------------------------------------------------

decisions_app = typer.Typer(help="The optimizer's decision log.", no_args_is_help=True)

_DECISION_COLUMNS = ["AT", "POLICY", "EDGE", "ACTION", "OUTCOME", "REASON"]


def _decision_row(d: dict[str, Any]) -> list[Any]:
    edge = d.get("edge_name") or d.get("nid") or d.get("edge_id")
    outcome = d["outcome"] + (" (dry run)" if d.get("dry_run") else "")
    return [d["at"], d["policy"], edge, d["action"], outcome, d["reason"]]


@decisions_app.command("list")
def decisions_list(
    edge: str = typer.Option(None, "--edge", help="only this edge (id, name or nid)"),
    limit: int = typer.Option(50, "--limit", min=1, help="at most this many, newest first"),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """The decisions, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if edge is not None:
        params["edge"] = edge
    body = _read("optimizer", "/decisions", params)
    if as_json:
        _print_json(body)
        return
    rows = [_decision_row(d) for d in body["items"]]
    _console().print(_table(None, _DECISION_COLUMNS, rows))


# --- explain -------------------------------------------------------------------------------------


def explain(
    edge: str = typer.Argument(..., help="edge id, name or nid"),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Why an edge runs what it runs: its deployments, the decisions behind them, its state."""
    body = _read("optimizer", f"/edges/{quote(edge, safe='')}/explain", None)
    if as_json:
        _print_json(body)
        return
    console = _console()
    pinned = "pinned" if body["pinned"] else "not pinned"
    console.print(
        f"Edge {body['edge_id']} {escape(body['name'])} (nid {escape(body['nid'])}): "
        f"{escape(str(body['status']))}, {pinned}"
    )
    node = body.get("node")
    if node:
        console.print(_table("Node", ["FIELD", "VALUE"], [[k, v] for k, v in node.items()]))
    else:
        console.print("Node: no state reported")
    routing = body.get("routing")
    if routing:
        rows = [[k, v] for k, v in routing.items()]
        console.print(_table("Routing", ["FIELD", "VALUE"], rows))
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
    if deployments:
        console.print(_table("Deployments", columns, deployments))
    else:
        console.print("Deployments: none")
    decisions = [_decision_row(d) for d in body["recent_decisions"]]
    if decisions:
        console.print(_table("Recent decisions", _DECISION_COLUMNS, decisions))
    else:
        console.print("Recent decisions: none")
    memory = body.get("memory") or {}
    if memory:
        console.print(_table("Memory", ["FIELD", "VALUE"], [[k, v] for k, v in memory.items()]))


# --- nodes ---------------------------------------------------------------------------------------

nodes_app = typer.Typer(help="Node state as the VMS sees it.", no_args_is_help=True)


@nodes_app.command("state")
def nodes_state(
    nids: str = typer.Option(None, "--nids", help="comma list of node ids; default all"),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Every node: condition, cpu and memory, last seen, stale or not."""
    params = {"nids": nids} if nids else None
    body = _read("vms", "/nodes/state", params)
    if as_json:
        _print_json(body)
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
    _console().print(_table(None, columns, rows))


def register(app: typer.Typer) -> None:
    app.add_typer(edges_app, name="edges")
    app.add_typer(deployments_app, name="deployments")
    app.add_typer(decisions_app, name="decisions")
    app.command("explain")(explain)
    app.add_typer(nodes_app, name="nodes")
