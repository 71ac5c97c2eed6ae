"""``edgectl clips list/get``: the event clips the edges' YOLO workers uploaded to the VMS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import typer

from edge_ai.common.http import sync_client
from edgectl.ops.client import (
    JsonOption,
    base_url,
    console,
    error_text,
    fail,
    headers,
    print_json,
    read,
    resolve_edge,
    table,
)

app = typer.Typer(help="Event clips (MP4) the edges uploaded.", no_args_is_help=True)


@app.command("list")
def clips_list(
    edge: str = typer.Option(None, "--edge", help="only this edge's (id, name or nid)"),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    as_json: bool = JsonOption,
) -> None:
    """Clips, newest first: id, edge, event, start, duration, classes, size."""
    params: dict[str, Any] = {"limit": limit}
    if edge:
        params["nid"] = resolve_edge(edge)["nid"]
    body = read("vms", "/clips", params)
    if as_json:
        print_json(body)
        return
    rows = [
        [
            c["id"][:12],
            c["nid"],
            c["event"],
            c["started_at"],
            f"{c['duration_s']:.1f}s",
            ", ".join(c["classes"]),
            c["size"],
        ]
        for c in body["items"]
    ]
    columns = ["ID", "NID", "EVENT", "STARTED", "DURATION", "CLASSES", "BYTES"]
    console().print(table(f"{body['total']} clip(s)", columns, rows))


@app.command("get")
def clips_get(
    clip: str = typer.Argument(..., help="the clip's id (or a unique prefix of it, from list)"),
    out: Path = typer.Option(None, "--out", "-o", help="file to write; default <id>.mp4"),
) -> None:
    """Download a clip (MP4)."""
    clip_id = clip
    if not re.fullmatch(r"[0-9a-f]{64}", clip):
        matches = [c["id"] for c in read("vms", "/clips", {"limit": 500})["items"]]
        matches = [m for m in matches if m.startswith(clip)]
        if len(matches) != 1:
            fail(f"{len(matches)} clips start with {clip!r}: give more of the id")
        clip_id = matches[0]
    target = out or Path(f"{clip_id}.mp4")
    url = f"{base_url('vms')}/clips/{clip_id}/video"
    try:
        with sync_client(headers=headers(), timeout=60) as http, http.stream("GET", url) as r:
            if r.status_code >= 400:
                r.read()
                fail(f"vms answered {r.status_code}: {error_text(r)}")
            with open(target, "wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
    except httpx.HTTPError as exc:
        fail(f"cannot reach vms at {base_url('vms')}: {exc or type(exc).__name__}")
    typer.echo(f"{target} ({target.stat().st_size} bytes)")
