"""``edgectl clusters list/add/show/remove`` and ``edgectl masters list/add/show/remove``: the
clusters and the masters registered in setup, with the state of the master serving each."""

from __future__ import annotations

from typing import Any

import typer

from edgectl.ops.client import (
    JsonOption,
    call,
    console,
    fail,
    fields_table,
    print_json,
    read,
    table,
)

clusters_app = typer.Typer(help="Clusters registered in setup.", no_args_is_help=True)
masters_app = typer.Typer(
    help="Masters registered in setup (and their state).", no_args_is_help=True
)

RUNTIMES = ("agent", "agent-pull", "kubernetes", "docker")


def _find(kind: str, ref: str) -> dict[str, Any]:
    """A cluster or master by id or by its exact name."""
    if ref.isdigit():
        found: dict[str, Any] = call("GET", "setup", f"/{kind}/{ref}")
        return found
    items = read("setup", f"/{kind}", {"limit": 10_000})["items"]
    named = [item for item in items if item["name"] == ref]
    if not named:
        fail(f"no {kind[:-1]} with id or name {ref!r}")
    return named[0]


# ---- clusters --------------------------------------------------------------------------------


@clusters_app.command("list")
def clusters_list(as_json: bool = JsonOption) -> None:
    """Every cluster: runtime, namespace, the master serving it and that master's state."""
    body = read("setup", "/clusters", {"limit": 10_000})
    if as_json:
        print_json(body)
        return
    rows = [
        [
            c["id"],
            c["name"],
            c["runtime"],
            c["namespace"],
            c.get("master_name"),
            c.get("master_state"),
            c.get("master_last_seen_at"),
        ]
        for c in body["items"]
    ]
    columns = ["ID", "NAME", "RUNTIME", "NAMESPACE", "MASTER", "MASTER STATE", "LAST SEEN"]
    console().print(table(None, columns, rows))


@clusters_app.command("show")
def clusters_show(
    cluster: str = typer.Argument(..., help="cluster id or name"), as_json: bool = JsonOption
) -> None:
    """One cluster, every field."""
    found = _find("clusters", cluster)
    if as_json:
        print_json(found)
        return
    console().print(fields_table(found))


@clusters_app.command("add")
def clusters_add(
    name: str = typer.Argument(..., help="the cluster's name (unique)"),
    runtime: str = typer.Option(
        "agent", "--runtime", help=f"how the master runs AIs there: {', '.join(RUNTIMES)}"
    ),
    namespace: str = typer.Option(None, "--namespace", help="Kubernetes namespace for AIs"),
    description: str = typer.Option(None, "--description"),
    as_json: bool = JsonOption,
) -> None:
    """Register a cluster."""
    body = {"name": name, "runtime": runtime, "namespace": namespace, "description": description}
    _register("clusters", body, "runtime", as_json)


@clusters_app.command("remove")
def clusters_remove(
    cluster: str = typer.Argument(..., help="cluster id or name"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
) -> None:
    """Remove a cluster (setup refuses while edges belong to it)."""
    _remove("clusters", cluster, yes)


# ---- masters ---------------------------------------------------------------------------------


@masters_app.command("list")
def masters_list(as_json: bool = JsonOption) -> None:
    """Every master: its URL, the clusters it serves, its state (live, silent or a record only)
    and when it was last heard from."""
    body = read("setup", "/masters", {"limit": 10_000})
    if as_json:
        print_json(body)
        return
    rows = [
        [
            m["id"],
            m["name"],
            m["url"],
            ", ".join(m.get("clusters") or []) or "-",
            m.get("state"),
            m.get("last_seen_at"),
        ]
        for m in body["items"]
    ]
    console().print(table(None, ["ID", "NAME", "URL", "CLUSTERS", "STATE", "LAST SEEN"], rows))


@masters_app.command("show")
def masters_show(
    master: str = typer.Argument(..., help="master id or name"), as_json: bool = JsonOption
) -> None:
    """One master, every field (its health report included)."""
    found = _find("masters", master)
    if as_json:
        print_json(found)
        return
    console().print(fields_table(found))


@masters_app.command("add")
def masters_add(
    name: str = typer.Argument(..., help="the master's name (unique)"),
    url: str = typer.Option(..., "--url", help="http(s)://host:port of the master's API"),
    cluster: int = typer.Option(None, "--cluster", help="cluster id it belongs to"),
    description: str = typer.Option(None, "--description"),
    as_json: bool = JsonOption,
) -> None:
    """Register a master as a record (a running master registers itself and heartbeats)."""
    body = {"name": name, "url": url, "cluster_id": cluster, "description": description}
    _register("masters", body, "url", as_json)


@masters_app.command("remove")
def masters_remove(
    master: str = typer.Argument(..., help="master id or name"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
) -> None:
    """Remove a master's record."""
    _remove("masters", master, yes)


def _register(kind: str, body: dict, shown: str, as_json: bool) -> None:
    """POST a cluster or master (unset options left out) and say what setup registered."""
    created = call(
        "POST", "setup", f"/{kind}", body={k: v for k, v in body.items() if v is not None}
    )
    if as_json:
        print_json(created)
        return
    typer.echo(f"{kind[:-1]} {created['id']} {created['name']} ({created[shown]}) registered")


def _remove(kind: str, ref: str, yes: bool) -> None:
    """DELETE a cluster or master named by id or name, after asking unless ``yes``."""
    found = _find(kind, ref)
    if not yes:
        typer.confirm(f"remove {kind[:-1]} {found['name']}?", abort=True)
    call("DELETE", "setup", f"/{kind}/{found['id']}")
    typer.echo(f"{kind[:-1]} {found['id']} {found['name']} removed")
