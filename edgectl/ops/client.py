"""What every operator verb shares: service URLs, the token, one-line errors, tables, ``--json``.

Service URLs come from EDGE_SETUP_URL, EDGE_MASTER_URL, EDGE_OPTIMIZER_URL, EDGE_VMS_URL and
EDGE_ANALYSIS_URL (the services' own defaults otherwise); the token from EDGE_OPERATOR_TOKEN when
set (reads also work without one where the services run with EDGE_OPEN_READS=true). An error
prints one line (the service's message) and exits 1.
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

from edge_ai.common.http import CallFailed, EdgeSyncClient, error_of
from shared.contracts.decisions import CHANGED_VIA_HEADER, ChangedVia

DEFAULT_URLS = {
    "setup": ("EDGE_SETUP_URL", "http://127.0.0.1:8001"),
    "master": ("EDGE_MASTER_URL", "http://127.0.0.1:8002"),
    "optimizer": ("EDGE_OPTIMIZER_URL", "http://127.0.0.1:8003"),
    "vms": ("EDGE_VMS_URL", "http://127.0.0.1:6432"),
    "analysis": ("EDGE_ANALYSIS_URL", "http://127.0.0.1:8004"),
}
JSON_HELP = "print the service's JSON (for scripts)"
TOKEN_ENV = "EDGE_OPERATOR_TOKEN"


def fail(message: str) -> NoReturn:
    typer.echo(f"edgectl: {message}", err=True)
    raise typer.Exit(1)


def base_url(service: str) -> str:
    variable, default = DEFAULT_URLS[service]
    return (os.environ.get(variable) or default).rstrip("/")


def headers(token_env: str = TOKEN_ENV) -> dict[str, str]:
    """The token, and where a change comes from (the optimizer logs who changed what)."""
    token = os.environ.get(token_env)
    out = {CHANGED_VIA_HEADER: ChangedVia.EDGECTL.value}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def error_text(response: httpx.Response) -> str:
    message, field = error_of(response)
    return f"{message} ({field})" if field and field not in message else message


# The verbs read every answer themselves: only an unreachable service is an error here.
_ANY_STATUS = tuple(range(300, 600))


def request(
    method: str,
    service: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    token_env: str = TOKEN_ENV,
) -> httpx.Response:
    """One call; a service that cannot be reached ends the command with one line."""
    base = base_url(service)
    with EdgeSyncClient(service, base, headers=headers(token_env), timeout=30) as http:
        try:
            return http.request(method, path, params=params, json=body, allow=_ANY_STATUS)
        except CallFailed as exc:
            cause = exc.__cause__
            fail(f"cannot reach {service} at {base}: {cause or type(cause).__name__}")


def call(
    method: str,
    service: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    token_env: str = TOKEN_ENV,
) -> Any:
    """The JSON of a call (None for an empty answer); a refusal ends the command with the
    service's message."""
    response = request(method, service, path, params=params, body=body, token_env=token_env)
    if response.status_code >= 400:
        fail(f"{service} answered {response.status_code}: {error_text(response)}")
    return response.json() if response.content else None


def read(service: str, path: str, params: dict[str, Any] | None = None) -> Any:
    return call("GET", service, path, params=params)


def print_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, default=str))


def console() -> Console:
    found = Console()
    return found if found.is_terminal else Console(width=200)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, default=str))
    return escape(str(value))


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*(cell(v) for v in row))
    return out


def fields_table(record: dict[str, Any], title: str | None = None) -> Table:
    return table(title, ["FIELD", "VALUE"], [[k, v] for k, v in record.items()])


def edge_path(ref: str) -> str:
    return f"/edges/{quote(ref, safe='')}"


def resolve_edge(ref: str) -> dict[str, Any]:
    """An edge by id, name or nid (setup's ``GET /edges/{edge}`` takes all three)."""
    response = request("GET", "setup", edge_path(ref))
    if response.status_code == 404:
        fail(f"no edge with id, name or nid {ref!r}")
    if response.status_code >= 400:
        fail(f"setup answered {response.status_code}: {error_text(response)}")
    edge: dict[str, Any] = response.json()
    return edge


JsonOption = typer.Option(False, "--json", help=JSON_HELP)
EdgeArgument = typer.Argument(..., help="edge id, name or nid")
