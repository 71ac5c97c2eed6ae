"""``edgectl edges list/show/add/remove/credential/revoke-tokens``: edges registered in setup."""

from __future__ import annotations

from typing import Any

import typer

from edgectl.ops.client import (
    EdgeArgument,
    JsonOption,
    call,
    console,
    edge_path,
    fields_table,
    print_json,
    read,
    resolve_edge,
    table,
)

app = typer.Typer(help="Edges registered in setup.", no_args_is_help=True)


@app.command("list")
def edges_list(as_json: bool = JsonOption) -> None:
    """Every edge: id, name, nid, cluster, status, ip, analysis support."""
    body = read("setup", "/edges", {"limit": 10_000})
    if as_json:
        print_json(body)
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
    console().print(table(None, columns, rows))


@app.command("show")
def edges_show(edge: str = EdgeArgument, as_json: bool = JsonOption) -> None:
    """One edge, every field (the camera URL with its credentials masked)."""
    found = resolve_edge(edge)
    if as_json:
        print_json(found)
        return
    console().print(fields_table(found))


def _gps(text: str | None) -> dict[str, float] | None:
    """``LAT,LON`` -> setup's gps (it checks the ranges)."""
    if text is None:
        return None
    lat, sep, lon = text.partition(",")
    try:
        if not sep:
            raise ValueError
        return {"latitude": float(lat), "longitude": float(lon)}
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: give LAT,LON in degrees, e.g. 37.5665,126.978", param_hint="--gps"
        ) from None


CAPACITY_KEYS = {"cpu": float, "memory_mb": int, "gpu": int}


def _capacity(text: str | None) -> dict[str, float | int] | None:
    """``cpu=4,memory_mb=8192,gpu=1`` -> setup's capacity (any of the three)."""
    if text is None:
        return None
    out: dict[str, float | int] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        kind = CAPACITY_KEYS.get(key.strip())
        try:
            if not sep or kind is None:
                raise ValueError
            out[key.strip()] = kind(value.strip())
        except ValueError:
            raise typer.BadParameter(
                f"{part!r}: give cpu=CORES,memory_mb=MB,gpu=N (any of them)",
                param_hint="--capacity",
            ) from None
    return out


GpsOption = typer.Option(None, "--gps", metavar="LAT,LON", help="position, e.g. 37.5665,126.978")
CapacityOption = typer.Option(
    None, "--capacity", metavar="cpu=N,memory_mb=N,gpu=N", help="what the edge can run"
)
NodeNameOption = typer.Option(None, "--node-name", help="Kubernetes node name")
TimeZoneOption = typer.Option(None, "--time-zone", help="IANA zone, e.g. Asia/Seoul")


@app.command("add")
def edges_add(
    name: str = typer.Argument(..., help="the edge's name (unique)"),
    nid: str = typer.Option(
        None, "--nid", help="node id its programs report with; default next 0xNN"
    ),
    cluster: int = typer.Option(None, "--cluster", help="cluster id; default the default cluster"),
    address: str = typer.Option(None, "--address"),
    ip: str = typer.Option(None, "--ip"),
    camera_url: str = typer.Option(None, "--camera-url", help="RTSP URL (credentials kept secret)"),
    agent_url: str = typer.Option(None, "--agent-url", help="edge agent base URL"),
    analysis: bool = typer.Option(False, "--analysis/--no-analysis", help="supports analysis"),
    time_zone: str = TimeZoneOption,
    gps: str = GpsOption,
    capacity: str = CapacityOption,
    node_name: str = NodeNameOption,
    device_login: str = typer.Option(
        None,
        "--device-login",
        help="the login name its field devices report as username (e.g. edge-master-01-1129)",
    ),
    description: str = typer.Option(None, "--description"),
    as_json: bool = JsonOption,
) -> None:
    """Register an edge; prints its token once (the edge's programs need it). Without --gps the
    overload and focus policies pass it by (`edgectl explain` says so)."""
    body: dict[str, Any] = {
        "name": name,
        "nid": nid,
        "cluster_id": cluster,
        "address": address,
        "ip": ip,
        "url": camera_url,
        "agent_url": agent_url,
        "isSupportAnnalysis": "YES" if analysis else "NO",
        "time_zone": time_zone,
        "gps": _gps(gps),
        "capacity": _capacity(capacity),
        "node_name": node_name,
        "device_login": device_login,
        "description": description,
    }
    created = call("POST", "setup", "/edges", body={k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(created)
        return
    typer.echo(f"edge {created['id']} {created['name']} (nid {created['nid']}) registered")
    typer.echo(f"token (shown once): {created['token']}")


@app.command("edit")
def edges_edit(
    edge: str = EdgeArgument,
    name: str = typer.Option(None, "--name", help="a new name"),
    cluster: int = typer.Option(None, "--cluster", help="cluster id"),
    address: str = typer.Option(None, "--address"),
    ip: str = typer.Option(None, "--ip"),
    camera_url: str = typer.Option(None, "--camera-url", help="RTSP URL (credentials kept secret)"),
    agent_url: str = typer.Option(None, "--agent-url", help="edge agent base URL"),
    analysis: bool = typer.Option(None, "--analysis/--no-analysis", help="supports analysis"),
    time_zone: str = TimeZoneOption,
    gps: str = GpsOption,
    capacity: str = CapacityOption,
    node_name: str = NodeNameOption,
    description: str = typer.Option(None, "--description"),
    as_json: bool = JsonOption,
) -> None:
    """Change an edge's fields (only those given)."""
    body: dict[str, Any] = {
        "name": name,
        "cluster_id": cluster,
        "address": address,
        "ip": ip,
        "url": camera_url,
        "agent_url": agent_url,
        "isSupportAnnalysis": None if analysis is None else ("YES" if analysis else "NO"),
        "time_zone": time_zone,
        "gps": _gps(gps),
        "capacity": _capacity(capacity),
        "node_name": node_name,
        "description": description,
    }
    changes = {k: v for k, v in body.items() if v is not None}
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    updated = call("PATCH", "setup", edge_path(edge), body=changes)
    if as_json:
        print_json(updated)
        return
    typer.echo(f"edge {updated['id']} {updated['name']} updated: {', '.join(sorted(changes))}")


@app.command("remove")
def edges_remove(
    edge: str = EdgeArgument,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
) -> None:
    """Remove an edge (its tokens die with it)."""
    if not yes:
        typer.confirm(f"remove edge {edge}?", abort=True)
    call("DELETE", "setup", edge_path(edge))
    typer.echo(f"edge {edge} removed")


@app.command("credential")
def edges_credential(
    edge: str = EdgeArgument,
    days: int = typer.Option(365, "--days", min=1, help="lifetime in days"),
    as_json: bool = JsonOption,
) -> None:
    """A long-lived token for a field device without an agent (it cannot renew one); printed
    once. Revoke with `edgectl edges revoke-tokens EDGE`."""
    issued = call("POST", "setup", f"{edge_path(edge)}/credential", body={"days": days})
    if as_json:
        print_json(issued)
        return
    typer.echo(f"credential for edge {issued['id']} (nid {issued['nid']}), {days} days")
    typer.echo(f"token (shown once): {issued['token']}")


@app.command("revoke-tokens")
def edges_revoke_tokens(
    edge: str = EdgeArgument,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
) -> None:
    """Revoke every token of an edge issued so far: its agent's, its workloads' and its devices'
    credentials (an agent then needs `edgectl` to hand it a new one)."""
    if not yes:
        typer.confirm(f"revoke every token of edge {edge}?", abort=True)
    call("DELETE", "setup", f"{edge_path(edge)}/tokens")
    typer.echo(f"every token of edge {edge} revoked")
