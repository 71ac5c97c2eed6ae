"""``edgectl pin/unpin``, ``optimizer pause/resume/dry-run/status`` and ``rollouts
list/pause/resume``: the optimizer's operator controls."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer

from edgectl.ops.client import (
    EdgeArgument,
    JsonOption,
    call,
    console,
    fields_table,
    print_json,
    read,
    table,
)


def pin(
    edge: str = EdgeArgument,
    reason: str = typer.Option("", "--reason", help="why (shown in explain and pins)"),
    as_json: bool = JsonOption,
) -> None:
    """Freeze an edge: no policy touches its deployments until unpinned."""
    body = call("PUT", "optimizer", f"/pins/{quote(edge, safe='')}", body={"reason": reason})
    if as_json:
        print_json(body)
        return
    typer.echo(f"edge {body['edge_id']} {body.get('edge_name') or ''} pinned".replace("  ", " "))


def unpin(edge: str = EdgeArgument) -> None:
    """Unfreeze an edge: the optimizer decides for it again (a cycle runs for it now)."""
    call("DELETE", "optimizer", f"/pins/{quote(edge, safe='')}")
    typer.echo(f"edge {edge} unpinned")


# --- optimizer -------------------------------------------------------------------------------

optimizer_app = typer.Typer(
    help="Pause, resume and dry-run the optimizer (persisted).", no_args_is_help=True
)


def _controls(change: dict[str, bool] | None, as_json: bool) -> None:
    body = (
        read("optimizer", "/control")
        if change is None
        else call("PUT", "optimizer", "/control", body=change)
    )
    if as_json:
        print_json(body)
        return
    leader = (body.get("leader") or {}).get("holder") or body.get("leader")
    typer.echo(
        f"optimizer: {'paused' if body['paused'] else 'running'}, "
        f"dry run {'on' if body['dry_run'] else 'off'}, leader {leader or '-'}"
    )


@optimizer_app.command("status")
def optimizer_status(as_json: bool = JsonOption) -> None:
    """Paused or not, dry run or not, the leader and the last cycle."""
    _controls(None, as_json)


@optimizer_app.command("pause")
def optimizer_pause(as_json: bool = JsonOption) -> None:
    """No decision cycle runs until resumed."""
    _controls({"paused": True}, as_json)


@optimizer_app.command("resume")
def optimizer_resume(as_json: bool = JsonOption) -> None:
    """Cycles run again (one runs now to catch up)."""
    _controls({"paused": False}, as_json)


@optimizer_app.command("dry-run")
def optimizer_dry_run(
    on: str = typer.Argument(..., help="on or off", metavar="on|off"),
    as_json: bool = JsonOption,
) -> None:
    """Dry run on: decide and record, act on nothing. Off: act again."""
    _controls({"dry_run": _on_off(on)}, as_json)


def _on_off(value: str) -> bool:
    text = value.strip().lower()
    if text in ("on", "true", "yes", "1"):
        return True
    if text in ("off", "false", "no", "0"):
        return False
    raise typer.BadParameter(f"{value!r}: say on or off", param_hint="on|off")


# --- rollouts --------------------------------------------------------------------------------

rollouts_app = typer.Typer(help="Version rollouts in waves.", no_args_is_help=True)

ROLLOUT_COLUMNS = ["ID", "FILENAME", "TO", "STATUS", "WAVE", "MEMBERS", "FAILED", "STARTED"]


def _rollout_row(r: dict[str, Any]) -> list[Any]:
    return [
        r["id"],
        r["filename"],
        r["to_version"],
        r["status"],
        r["wave"],
        len(r["members"]),
        len(r["failed"]),
        r["started_at"],
    ]


@rollouts_app.command("list")
def rollouts_list(as_json: bool = JsonOption) -> None:
    """Every rollout, newest first."""
    body = read("optimizer", "/rollouts")
    if as_json:
        print_json(body)
        return
    console().print(table(None, ROLLOUT_COLUMNS, [_rollout_row(r) for r in body]))


def _set(rollout: int, verb: str, as_json: bool) -> None:
    body = call("POST", "optimizer", f"/rollouts/{rollout}/{verb}")
    if as_json:
        print_json(body)
        return
    console().print(
        fields_table({k: body[k] for k in ("id", "filename", "to_version", "status", "wave")})
    )


@rollouts_app.command("pause")
def rollouts_pause(
    rollout: int = typer.Argument(..., help="rollout id"), as_json: bool = JsonOption
) -> None:
    """No new wave starts; edges already in the rollout keep the new version."""
    _set(rollout, "pause", as_json)


@rollouts_app.command("resume")
def rollouts_resume(
    rollout: int = typer.Argument(..., help="rollout id"), as_json: bool = JsonOption
) -> None:
    """Waves go on (the current wave is judged from now)."""
    _set(rollout, "resume", as_json)


@rollouts_app.command("rollback")
def rollouts_rollback(
    rollout: int = typer.Argument(..., help="rollout id"), as_json: bool = JsonOption
) -> None:
    """Stop the rollout and send every edge it upgraded back to the version it ran before (a
    logged decision per edge); the version policy leaves them there while it stays rolled back."""
    _set(rollout, "rollback", as_json)
