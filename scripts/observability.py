"""Writes the Grafana dashboards (deploy/observability/grafana/dashboards/*.json) and the
Kubernetes ConfigMaps that carry them and the Prometheus files (k8s/optional/observability/
configmaps.yaml), from the panels below and deploy/observability/*.

    python scripts/observability.py           # write
    python scripts/observability.py --check   # exit 1 when a written file is out of date

Every query names metrics the code exposes (tests/deploy/test_observability.py checks them against
the services' and agents' /metrics).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
OBS = REPO / "deploy" / "observability"
DASHBOARDS = OBS / "grafana" / "dashboards"
K8S_FILE = REPO / "k8s" / "optional" / "observability" / "configmaps.yaml"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
NAMESPACE = "edge-platform"


def panel(title: str, kind: str, targets: list[tuple[str, str]], unit: str = "short") -> dict:
    return {
        "title": title,
        "type": kind,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": expr,
                "legendFormat": legend,
                "datasource": DATASOURCE,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def p95(histogram: str, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile(0.95, sum by ({group}) (rate({histogram}_bucket[5m])))"


def row(title: str) -> dict:
    return {"title": title, "type": "row", "collapsed": False, "panels": []}


def layout(panels: list[dict]) -> list[dict]:
    """Rows span the width; other panels two per line, 12 wide and 8 high."""
    y, x, out = 0, 0, []
    for i, p in enumerate(panels, start=1):
        p = dict(p, id=i)
        if p["type"] == "row":
            if x:
                y, x = y + 8, 0
            p["gridPos"] = {"x": 0, "y": y, "w": 24, "h": 1}
            y += 1
        else:
            p["gridPos"] = {"x": x, "y": y, "w": 12, "h": 8}
            x = 12 if x == 0 else 0
            if x == 0:
                y += 8
        out.append(p)
    return out


def dashboard(uid: str, title: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["edge-platform"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": layout(panels),
    }


def variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "var"},
        "definition": query,
        "multi": True,
        "includeAll": True,
        "refresh": 2,
        "current": {},
        "options": [],
    }


def platform() -> dict:
    ts = "timeseries"
    panels = [
        row("Ingest (VMS)"),
        panel(
            "Records stored per second, by kind",
            ts,
            [("sum by (kind) (rate(vms_records_stored_total[5m]))", "{{kind}}")],
            "reqps",
        ),
        panel(
            "Records refused per second, by reason",
            ts,
            [("sum by (reason) (rate(vms_records_rejected_total[5m]))", "{{reason}}")],
            "reqps",
        ),
        panel(
            "Group commit p95",
            ts,
            [
                (
                    p95("vms_commit_duration_seconds"),
                    "p95",
                )
            ],
            "s",
        ),
        panel(
            "Records waiting for the writer",
            ts,
            [
                ("sum(vms_ingest_queued_records)", "queued"),
                ("sum(rate(vms_commit_failures_total[5m]))", "failed commits/s"),
            ],
        ),
        row("Decisions (optimizer)"),
        panel(
            "Decisions per minute, by policy and action",
            ts,
            [
                (
                    "sum by (policy, action) (increase(optimizer_decisions_total[5m])) / 5",
                    "{{policy}} {{action}}",
                )
            ],
        ),
        panel(
            "Cycles",
            ts,
            [
                ("sum by (result) (rate(optimizer_cycles_total[5m]))", "{{result}}"),
                (
                    p95("optimizer_cycle_duration_seconds"),
                    "p95 seconds",
                ),
            ],
        ),
        panel(
            "Paused / dry run",
            "stat",
            [("max(optimizer_paused)", "paused"), ("max(optimizer_dry_run)", "dry run")],
        ),
        panel(
            "Rollouts by status", "stat", [("max by (status) (optimizer_rollouts)", "{{status}}")]
        ),
        row("Deployments"),
        panel(
            "Deployments by observed state (master)",
            ts,
            [("max by (observed) (master_deployments)", "{{observed}}")],
        ),
        panel(
            "Deployment failures and reconcile passes",
            ts,
            [
                ("sum(increase(master_deployment_failures_total[15m]))", "failures (15 min)"),
                ("sum(rate(master_reconcile_passes_total[5m])) * 60", "passes/min"),
            ],
        ),
        panel(
            "Edges by status (optimizer's view)",
            "stat",
            [("max by (status) (optimizer_fleet_edges)", "{{status}}")],
        ),
        panel(
            "Deployments by observed state (optimizer's view)",
            ts,
            [("max by (observed) (optimizer_fleet_deployments)", "{{observed}}")],
        ),
        row("Analysis queue"),
        panel("Queue depth", ts, [("max(analysis_queue_depth)", "jobs")]),
        panel(
            "Images analysed per second",
            ts,
            [
                ("sum by (outcome) (rate(analysis_images_total[5m]))", "{{outcome}}"),
                ("sum(analysis_images_per_second)", "last batch"),
            ],
        ),
        panel(
            "Requests by outcome",
            ts,
            [("sum by (outcome) (rate(analysis_requests_total[5m]))", "{{outcome}}")],
        ),
        panel(
            "Dead-lettered and reclaimed jobs",
            ts,
            [
                ("sum(increase(analysis_dead_lettered_total[15m]))", "dead-lettered"),
                ("sum(increase(analysis_reclaimed_total[15m]))", "reclaimed"),
            ],
        ),
        row("HTTP"),
        panel(
            "Requests per second, by service and status",
            ts,
            [
                (
                    "sum by (service, status) (rate(http_requests_total[5m]))",
                    "{{service}} {{status}}",
                )
            ],
            "reqps",
        ),
        panel(
            "Latency p95, by service",
            ts,
            [
                (
                    p95("http_request_duration_seconds", "service"),
                    "{{service}}",
                )
            ],
            "s",
        ),
    ]
    return dashboard("edge-platform", "Edge platform", panels, [])


def edges() -> dict:
    ts = "timeseries"
    panels = [
        row("Per edge, as the edges report (VMS)"),
        panel("CPU %", ts, [('vms_node_cpu_percent{nid=~"$nid"}', "{{nid}}")], "percent"),
        panel("Memory %", ts, [('vms_node_memory_percent{nid=~"$nid"}', "{{nid}}")], "percent"),
        panel(
            "Condition",
            "state-timeline",
            [
                (
                    'max by (nid, condition) (vms_node_condition{nid=~"$nid"})',
                    "{{nid}} {{condition}}",
                )
            ],
        ),
        panel(
            "Seconds since the last record",
            ts,
            [('time() - vms_node_last_report_timestamp_seconds{nid=~"$nid"}', "{{nid}}")],
            "s",
        ),
        row("Per edge node, as the agents measure it"),
        panel("Node CPU %", ts, [("edge_node_cpu_percent", "{{node}}")], "percent"),
        panel("Node memory %", ts, [("edge_node_memory_percent", "{{node}}")], "percent"),
        panel(
            "Disk used % (agent work dir)",
            ts,
            [("edge_node_disk_used_percent", "{{node}}")],
            "percent",
        ),
        panel(
            "Network bytes per second",
            ts,
            [
                ("rate(edge_node_network_receive_bytes_total[5m])", "{{node}} in"),
                ("rate(edge_node_network_transmit_bytes_total[5m])", "{{node}} out"),
            ],
            "Bps",
        ),
        panel(
            "Workloads by state",
            ts,
            [("sum by (node, state) (edge_agent_workloads)", "{{node}} {{state}}")],
        ),
        panel("Agents up", "stat", [('up{job="edge-agents"}', "{{node}}")]),
    ]
    nid = variable("nid", "edge (nid)", "label_values(vms_node_cpu_percent, nid)")
    return dashboard("edge-platform-edges", "Edge platform: edges", panels, [nid])


def outputs() -> dict[Path, str]:
    files = {
        DASHBOARDS / "platform.json": json.dumps(platform(), indent=2) + "\n",
        DASHBOARDS / "edges.json": json.dumps(edges(), indent=2) + "\n",
    }
    files[K8S_FILE] = configmaps(files)
    return files


def configmaps(files: dict[Path, str]) -> str:
    def cm(name: str, data: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": data,
        }

    prometheus = cm(
        "prometheus-config",
        {
            "prometheus.yml": (REPO / "k8s/optional/observability/prometheus.yml").read_text(),
            "alerts.yml": (OBS / "alerts.yml").read_text(),
            "edge-agents.yml": (REPO / "k8s/optional/observability/edge-agents.yml").read_text(),
        },
    )
    grafana = cm(
        "grafana-provisioning",
        {
            "datasources.yml": (OBS / "grafana/datasources.yml").read_text(),
            "dashboards.yml": (OBS / "grafana/dashboards.yml").read_text(),
        },
    )
    dashboards = cm("grafana-dashboards", {p.name: text for p, text in sorted(files.items())})
    header = (
        "# Written by scripts/observability.py from deploy/observability and\n"
        "# k8s/optional/observability/prometheus.yml: edit those, then run the script.\n"
    )
    docs = [prometheus, grafana, dashboards]
    return header + yaml.safe_dump_all(docs, sort_keys=False, width=1000)


def _literal(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


yaml.SafeDumper.add_representer(str, _literal)


def main(argv: list[str]) -> int:
    stale = []
    for path, text in outputs().items():
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run python scripts/observability.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
