"""What `edgectl up` shows: services, edges (condition, AIs, usage) and the optimizer's latest
decisions.

A live rich view on a terminal; plain log lines (only what changed) otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from edge_ai.common.http import CallFailed, EdgeSyncClient
from edge_common.vocabulary import DesiredState


@dataclass
class FleetView:
    services: dict[str, str]  # name -> base URL
    headers: dict[str, str]
    status: dict[str, str] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines shown as they are (analysis off ...)
    analysis: dict[str, Any] | None = None  # the analysis gateway's GET /queue

    def refresh(self, client: EdgeSyncClient) -> None:
        self.errors = []
        for name, url in self.services.items():
            try:
                client.request("GET", f"{url}/readyz", request_timeout=2)
                self.status[name] = "ready"
            except CallFailed as exc:
                self.status[name] = "down" if exc.unreachable else "not ready"
        self.edges = self._edges(client)
        self.decisions = self._decisions(client)
        if "analysis" in self.services:
            self.analysis = self._get(client, "analysis", "/queue")

    def _get(self, client: EdgeSyncClient, service: str, path: str, **params: Any) -> Any:
        try:
            return client.json(
                "GET",
                f"{self.services[service]}{path}",
                params=params,
                headers=self.headers,
                request_timeout=3,
            )
        except CallFailed as exc:
            self.errors.append(f"{service}{path}: {exc.message}")
            return None

    def _edges(self, client: EdgeSyncClient) -> list[dict[str, Any]]:
        edges = self._get(client, "setup", "/edges", limit=200) or {"items": []}
        wanted = DesiredState.RUNNING
        deployments = self._get(client, "setup", "/deployments", desired=wanted, limit=2000) or {
            "items": []
        }
        ais = self._get(client, "setup", "/ai-packages", limit=2000) or {"items": []}
        state = self._get(client, "vms", "/nodes/state") or {"items": []}
        ai_by_id = {a["id"]: a for a in ais["items"]}
        state_by_nid = {s["nid"]: s for s in state["items"]}
        rows = []
        for edge in edges["items"]:
            node = state_by_nid.get(edge["nid"], {})
            usage = node.get("usage") or {}
            running = []
            for d in deployments["items"]:
                if d["edge_id"] != edge["id"]:
                    continue
                ai = ai_by_id.get(d["ai_id"], {})
                label = (
                    f"{ai.get('filename', '?')}-{ai.get('ai_class', '?')} v{ai.get('version', '?')}"
                )
                if ai.get("condition"):
                    label += f" ({ai['condition']})"
                running.append(f"{label} [{d['observed']}]")
            rows.append(
                {
                    "name": edge["name"],
                    "nid": edge["nid"],
                    "condition": node.get("condition") or "-",
                    "ais": running,
                    "cpu": usage.get("cpu"),
                    "memory": usage.get("memory"),
                    "stale": node.get("stale", True),
                }
            )
        return rows

    def _decisions(self, client: EdgeSyncClient) -> list[dict[str, Any]]:
        body = self._get(client, "optimizer", "/decisions", limit=8)
        if not body:
            return []
        return body.get("items", body) if isinstance(body, dict) else body

    # ---- rendering -------------------------------------------------------------------------

    def render(self) -> Group:
        services = Table(title="Services", expand=True)
        for col in ("service", "status", "API", "Swagger UI"):
            services.add_column(col)
        for name, url in self.services.items():
            colour = {"ready": "green", "down": "red"}.get(self.status.get(name, ""), "yellow")
            services.add_row(
                Text(name),
                Text(self.status.get(name, "?"), style=colour),
                Text(url),
                Text(f"{url}/docs"),
            )

        edges = Table(title="Edges", expand=True)
        for col in ("edge", "nid", "condition", "AIs (observed state)", "cpu %", "mem %"):
            edges.add_column(col)
        for e in self.edges:
            # Text, not markup: "[running]" is a state here, not a rich tag.
            offline = e["stale"]
            edges.add_row(
                Text(e["name"]),
                Text(e["nid"]),
                Text("offline", style="bold red") if offline else Text(e["condition"]),
                Text("\n".join(e["ais"]) or "-"),
                Text("-" if offline else _pct(e["cpu"])),
                Text("-" if offline else _pct(e["memory"])),
            )

        decisions = Table(title="Latest optimizer decisions", expand=True)
        for col in ("when", "policy", "edge", "action", "reason"):
            decisions.add_column(col, overflow="fold")
        for d in self.decisions:
            decisions.add_row(*(Text(cell) for cell in decision_cells(d)))
        parts: list[Any] = [services, edges, decisions]
        if "analysis" in self.services:
            parts.append(Text(analysis_line(self.analysis)))
        parts += [Text(note, style="yellow") for note in self.notes]
        if self.errors:
            parts.append(Text("waiting for: " + ", ".join(sorted(set(self.errors))), style="dim"))
        parts.append(
            Text("Ctrl-C stops everything; data is kept for the next `edgectl up`.", style="dim")
        )
        return Group(*parts)

    def plain_lines(self) -> list[str]:
        lines = [
            f"edge {e['name']} ({e['nid']}): "
            + ("offline (no report)" if e["stale"] else f"condition {e['condition']}")
            + "; "
            + ("; ".join(e["ais"]) or "no AI")
            for e in self.edges
        ]
        lines += ["decision: " + " | ".join(decision_cells(d)) for d in self.decisions]
        if "analysis" in self.services:
            lines.append(analysis_line(self.analysis))
        return self.notes + lines


def analysis_line(queue: dict[str, Any] | None) -> str:
    if queue is None:
        return "analysis: queue not readable yet"
    workers = queue.get("consumers", 0)
    return (
        f"analysis: {workers} worker{'s' if workers != 1 else ''}, "
        f"{queue.get('depth', 0)} job(s) queued, {queue.get('in_work', 0)} in work"
    )


def decision_cells(d: dict[str, Any]) -> tuple[str, str, str, str, str]:
    when = str(d.get("created_at") or d.get("at") or d.get("decided_at") or "")[11:19]
    edge = str(d.get("edge_name") or d.get("edge") or d.get("nid") or d.get("edge_id") or "")
    return when, str(d.get("policy", "")), edge, str(d.get("action", "")), str(d.get("reason", ""))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
