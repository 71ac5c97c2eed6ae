"""The auth matrix, generated from the OpenAPI documents of every service (issue 16, CI).

Every operation documents who may call it (``x-auth``, also a "Who may call" line in its
description). Every route is called with no token, a wrong token, an edge token, the operator's
token, each service's own credential and the shared service token of old deployments, and each
answer must be what the document says: 401 without a valid token, 403 for a caller it does not
list, anything but 401/403 for one it lists. The table in docs/api.md is this same document.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import websocket_routes
from shared.edge_tokens import issue_edge_token
from tests.conftest import running_app
from tests.helpers.env import (
    OPERATOR,
    SERVICE_TOKEN,
    SIGNER,
    free_port,
    service_credential,
    settings_for,
)

SERVICES = ("setup", "master", "optimizer", "vms", "analysis")
EDGE_NID = "0x01"
OTHER_NID = "0x02"
AUTH_TABLE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def callers() -> dict[str, dict[str, str]]:
    out = {
        "anonymous": {},
        "wrong": bearer("not-a-token-of-ours-0123456789"),
        "edge": bearer(issue_edge_token(EDGE_NID, SIGNER)),
        "operator": OPERATOR,
        "legacy": bearer(SERVICE_TOKEN),
    }
    out.update({name: bearer(service_credential(name)) for name in SERVICES})
    return out


def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"


def settings(service: str, db: str, tmp_path: Path):
    extra: dict[str, Any] = {
        "setup_url": nowhere(),
        "optimizer_url": nowhere(),
        "vms_url": nowhere(),
        "master_url": nowhere(),
    }
    if service == "setup":
        extra = {"notify_master": False}
    if service == "master":
        extra.update(
            artifact_dir=tmp_path / "artifacts",
            package_dir=tmp_path / "packages",
            reconcile_on_start=False,
            reconcile_seconds=3600,
            notify_optimizer=False,
        )
    if service == "analysis":
        extra = {
            "key_prefix": f"authmatrix-{uuid.uuid4().hex[:8]}:",
            "video_dir": str(tmp_path / "videos"),
            "rate_per_s": 0.0,
            "sync_timeout_s": 1.0,
        }
    return settings_for(service, db, **extra)


@contextlib.asynccontextmanager
async def service_app(
    service: str, db: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, dict]]:
    app = importlib.import_module(f"services.{service}.app").create_app(
        settings(service, db, tmp_path)
    )
    async with running_app(app) as client:
        yield client, (await client.get("/openapi.json")).json()


def operations(doc: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    ]


def fill(path: str, op: dict, own: str | None, nid: str) -> str:
    """A concrete URL: the edge's own node id (or another's) where the rule names one, else a
    value of the right type that names nothing."""
    types = {
        p["name"]: p.get("schema", {}).get("type")
        for p in op.get("parameters", [])
        if p["in"] == "path"
    }

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == own:
            return nid
        return "987654" if types.get(name) == "integer" else "no-such-thing"

    return re.sub(r"\{(\w+)\}", value, path)


def expected(caller: str, rule: dict, *, own_value: bool = True) -> str:
    """allow, 401 or 403, from the document alone."""
    if rule["rule"] == "open":
        return "allow"
    if caller in ("anonymous", "wrong"):
        return "401"
    if caller == "operator":
        return "allow" if rule["operator"] else "403"
    if caller == "edge":
        edge = rule["edge"]
        if edge is True or edge == "own":
            return "allow"
        if isinstance(edge, str) and edge.startswith("own:"):
            return "allow" if own_value else "403"
        return "403"
    return "allow" if caller in rule["services"] else "403"


def seen(status: int) -> str:
    return str(status) if status in (401, 403) else "allow"


async def matrix(service: str, db: str, tmp_path: Path) -> tuple[int, list[str]]:
    problems: list[str] = []
    calls = 0
    async with service_app(service, db, tmp_path) as (client, doc):
        if service == "setup":  # the edge of the edge token is registered (it renews its token)
            r = await client.post(
                "/edges", json={"name": "matrix-edge", "nid": EDGE_NID}, headers=OPERATOR
            )
            assert r.status_code == 201, r.text
        for method, path, op in operations(doc):
            rule = op["x-auth"]
            own = (
                rule["edge"][4:]
                if isinstance(rule["edge"], str) and rule["edge"].startswith("own:")
                else None
            )
            variants = [(EDGE_NID, True)] + ([(OTHER_NID, False)] if own else [])
            for nid, own_value in variants:
                url = fill(path, op, own, nid)
                for caller, headers in callers().items():
                    if not own_value and caller != "edge":
                        continue
                    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
                    r = await client.request(method, url, headers=headers, **body)
                    calls += 1
                    want, got = expected(caller, rule, own_value=own_value), seen(r.status_code)
                    if want != got:
                        problems.append(
                            f"{service} {method} {url} as {caller}: documented {want}, answered "
                            f"{r.status_code} {r.text[:120]}"
                        )
    return calls, problems


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_answers_every_caller_as_documented(db, tmp_path, service):
    calls, problems = await matrix(service, db, tmp_path)
    print(f"{service}: {calls} calls, {len(problems)} differing from the document")
    assert not problems, "\n".join(problems)


async def test_every_operation_documents_its_rule(db, tmp_path):
    for service in SERVICES:
        async with service_app(service, db, tmp_path) as (_, doc):
            for method, path, op in operations(doc):
                assert "x-auth" in op and "Who may call:" in op.get("description", ""), (
                    service,
                    method,
                    path,
                )


def websocket_paths(app: Any) -> set[str]:
    return {route.path for route in websocket_routes(list(app.routes))}


def websocket_answer(client: Any, path: str, headers: dict[str, str]) -> str:
    """allow (the handshake accepted) or 401 (closed with 1008 before it)."""
    from starlette.websockets import WebSocketDisconnect

    try:
        with client.websocket_connect(path, headers=headers):
            return "allow"
    except WebSocketDisconnect as exc:
        assert exc.code == 1008, exc.code
        return "401"


@pytest.mark.parametrize("service", SERVICES)
def test_every_websocket_is_documented_and_answers_every_caller_as_documented(
    db, tmp_path, service
):
    """WebSocket routes are listed in the document (``x-websockets``: OpenAPI has no place for
    them) with the same rule; a route missing there fails, and each caller gets what it says
    (refused with close code 1008; a valid but unlisted caller too, as the handshake has no 403)."""
    from starlette.testclient import TestClient

    app = importlib.import_module(f"services.{service}.app").create_app(
        settings(service, db, tmp_path)
    )
    with TestClient(app) as client:
        documented = client.get("/openapi.json").json().get("x-websockets", {})
        assert set(documented) == websocket_paths(app), (service, set(documented))
        if service == "analysis":  # the one WebSocket today: the finder must see it
            assert set(documented) == {"/ws/frames"}
        for path, entry in documented.items():
            assert "Who may call:" in entry["description"], (service, path)
            for caller, headers in callers().items():
                want = expected(caller, entry["x-auth"])
                want = "401" if want == "403" else want
                got = websocket_answer(client, path, headers)
                assert want == got, f"{service} WS {path} as {caller}: documented {want}, got {got}"


def table(docs: dict[str, dict]) -> str:
    """The "Who may call what" table of docs/api.md, from the documents."""
    lines = ["| Service | Route | Operator | Services | Edge token |", "|---|---|---|---|---|"]
    for service, doc in docs.items():
        for method, path, op in operations(doc):
            rule = op["x-auth"]
            if rule["rule"] == "open":
                lines.append(f"| {service} | `{method} {path}` | open | open | open |")
                continue
            services = ", ".join(s for s in rule["services"] if s != "legacy") or "-"
            edge = rule["edge"]
            edge_text = (
                {True: "yes", False: "-"}.get(edge)
                if isinstance(edge, bool)
                else ("its own" if edge == "own" else f"its own ({edge[4:]})")
            )
            operator = "yes" if rule["operator"] else "-"
            lines.append(
                f"| {service} | `{method} {path}` | {operator} | {services} | {edge_text} |"
            )
        for path, entry in doc.get("x-websockets", {}).items():
            rule = entry["x-auth"]
            services = ", ".join(s for s in rule["services"] if s != "legacy") or "-"
            edge_text = "yes" if rule["edge"] is True else "-"
            operator = "yes" if rule["operator"] else "-"
            lines.append(f"| {service} | `WS {path}` | {operator} | {services} | {edge_text} |")
    return "\n".join(lines)


async def test_the_docs_table_is_the_documents(db, tmp_path):
    docs = {}
    for service in SERVICES:
        async with service_app(service, db, tmp_path) as (_, doc):
            docs[service] = doc
    expected_table = table(docs)
    if (
        os.environ.get("EDGE_UPDATE_DOCS") == "1"
    ):  # regenerate: EDGE_UPDATE_DOCS=1 pytest -k docs_table
        text = AUTH_TABLE_PAGE.read_text()
        start = text.index("| Service | Route | Operator | Services | Edge token |")
        end = text.find("\n\n", start)
        AUTH_TABLE_PAGE.write_text(
            text[:start] + expected_table + (text[end:] if end >= 0 else "\n")
        )
    assert expected_table in AUTH_TABLE_PAGE.read_text(), (
        "docs/api.md's 'Who may call what' table is out of date; the current one:\n"
        + expected_table
    )
