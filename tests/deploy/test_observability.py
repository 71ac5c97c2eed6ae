"""Prometheus and Grafana as operators run them (compose.yaml, k8s/optional/observability): the
alert rules and scrape config pass promtool, the alerts fire on the series they watch, the Grafana
dashboards are well formed, and every metric a dashboard or an alert names is one the running
services and edge agent expose at /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from tests.agent.helpers import Agent, ArtifactServer
from tests.helpers.env import OPERATOR
from tests.security.stack import running_services

REPO = Path(__file__).resolve().parents[2]
OBS = REPO / "deploy" / "observability"
DASHBOARDS = sorted((OBS / "grafana" / "dashboards").glob("*.json"))
K8S_PROMETHEUS = REPO / "k8s" / "optional" / "observability" / "prometheus.yml"
PROMTOOL = shutil.which("promtool")
PANEL_TYPES = {"row", "timeseries", "stat", "state-timeline", "gauge", "table", "bargauge"}
# Series Prometheus makes itself, not the services.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "time", "histogram_quantile",
    "label_values", "bool", "offset", "le", "topk", "bottomk", "abs", "delta", "deriv",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (labels, functions and keywords removed)."""
    text = re.sub(r"label_values\(\s*([^,()]+),\s*\w+\s*\)", r"\1", expr)  # Grafana's
    text = re.sub(r'"[^"]*"', "", text)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", n)}


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            out += [(f"{path.name}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
        for var in board["templating"]["list"]:
            out.append((f"{path.name}: ${var['name']}", var["query"]["query"]))
    return out


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((OBS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


# --- files --------------------------------------------------------------------------------


def test_generated_files_are_up_to_date():
    out = subprocess.run(
        [sys.executable, "scripts/observability.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_check_finds_a_stale_dashboard(tmp_path):
    """--check compares: a hand-edited dashboard is reported (then restored)."""
    path = DASHBOARDS[0]
    original = path.read_text()
    try:
        path.write_text(original.replace('"title"', '"Title"', 1))
        out = subprocess.run(
            [sys.executable, "scripts/observability.py", "--check"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1 and path.name in out.stdout
    finally:
        path.write_text(original)


def test_dashboards_are_well_formed_grafana_json():
    datasources = yaml.safe_load((OBS / "grafana" / "datasources.yml").read_text())
    [source] = datasources["datasources"]
    provider = yaml.safe_load((OBS / "grafana" / "dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    uids = set()
    titles: set[str] = set()
    assert {p.name for p in DASHBOARDS} == {"platform.json", "edges.json"}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert {"uid", "title", "panels", "schemaVersion", "templating", "time"} <= set(board)
        assert board["uid"] not in uids and re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
        uids.add(board["uid"])
        titles |= {p["title"] for p in board["panels"]}
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        variables = {v["name"] for v in board["templating"]["list"]}
        for panel in board["panels"]:
            assert panel["type"] in PANEL_TYPES, panel
            grid = panel["gridPos"]
            assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h"))
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": source["type"], "uid": source["uid"]}
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["refId"] and target["expr"].strip()
                used = set(re.findall(r"\$(\w+)", target["expr"]))
                assert used <= variables, (panel["title"], used)
    # what the issue asks the dashboards to show
    for wanted in ("Records stored", "Decisions", "Deployments by observed", "Queue depth",
                   "CPU %", "Memory %", "Condition"):  # fmt: skip
        assert any(wanted in t for t in titles), wanted


# --- Prometheus files -------------------------------------------------------------------


def test_alert_rules_cover_what_operators_watch():
    names = {r["alert"] for r in alert_rules()}
    assert {
        "EdgeOffline",
        "DeploymentFailed",
        "EdgeDegraded",
        "RolloutHalted",
        "IngestRefusing",
    } <= names
    for rule in alert_rules():
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_checks_the_rules_and_the_compose_scrape_config(tmp_path):
    rules = subprocess.run(
        [PROMTOOL, "check", "rules", str(OBS / "alerts.yml")], capture_output=True, text=True
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The config names the rules where compose mounts them: check a copy pointing here.
    config = (OBS / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(OBS / "alerts.yml"))
    )
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) not installed")
def test_alerts_fire_on_the_series_they_watch(tmp_path):
    """promtool's rule unit tests: each alert fires on a series that should trigger it."""
    series = [
        ('optimizer_rollouts{status="halted"}', "0 1 1 1"),
        ('optimizer_fleet_edges{status="degraded"}', "1 1 1 1"),
        ('master_deployments{observed="failed"}', "2x10"),
        ('vms_node_last_report_timestamp_seconds{nid="0x01"}', "0x10"),
        ('vms_records_rejected_total{reason="overloaded"}', "0+10x10"),
    ]
    # (alert, when, its labels, what its templates render: $value, $labels.nid)
    expected = [
        ("RolloutHalted", "3m", {"severity": "critical"}, {}),
        ("EdgeDegraded", "3m", {"severity": "warning"}, {"{{ $value }}": "1"}),
        ("DeploymentFailed", "8m", {"severity": "critical"}, {"{{ $value }}": "2"}),
        (
            "EdgeOffline",
            "6m",
            {"severity": "warning", "nid": "0x01"},
            {"{{ $labels.nid }}": "0x01", "{{ $value | humanizeDuration }}": "6m 0s"},
        ),
        ("IngestRefusing", "9m", {"severity": "critical"}, {}),
        ("RolloutHalted", "1m", None, {}),  # not yet: for 1m
    ]
    rules = {r["alert"]: r for r in alert_rules()}

    def annotations(name: str, values: dict[str, str]) -> dict[str, str]:
        out = {}
        for key, text in rules[name]["annotations"].items():
            for template, value in values.items():
                text = text.replace(template, value)
            out[key] = text
        return out

    tests = {
        "rule_files": [str(OBS / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in series],
                "alert_rule_test": [
                    {
                        "alertname": name,
                        "eval_time": at,
                        "exp_alerts": []
                        if labels is None
                        else [
                            {
                                "exp_labels": labels,
                                "exp_annotations": annotations(name, values),
                            }
                        ],
                    }
                    for name, at, labels, values in expected
                ],
            }
        ],
    }
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(tests))
    out = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_k8s_scrape_config_finds_every_platform_pod():
    """promtool here lacks Kubernetes discovery: the k8s config is checked by structure."""
    config = yaml.safe_load(K8S_PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"platform", "edge-agents"}
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    keep = jobs["platform"]["relabel_configs"][0]
    assert keep["action"] == "keep"
    for app in (
        "setup",
        "master",
        "optimizer",
        "vms",
        "analysis",
        "analysis-worker-cpu",
        "console",
    ):
        assert re.fullmatch(keep["regex"], app), app
    assert jobs["platform"]["kubernetes_sd_configs"] == [
        {"role": "pod", "namespaces": {"names": ["edge-platform"]}}
    ]
    assert jobs["edge-agents"]["file_sd_configs"] == [
        {"files": ["/etc/prometheus/edge-agents.yml"]}
    ]


# --- metric names against the real /metrics ----------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from running_services(tmp_path_factory)


def _names(exposition: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", exposition, flags=re.M))


@pytest.fixture(scope="module")
def exposed(stack, tmp_path_factory) -> set[str]:
    """Every metric name the four services, an edge agent (real processes) and the analysis
    gateway and worker (their registries) expose."""
    names: set[str] = set()
    # a record through the VMS so that per-node series exist too
    usage = {"nid": "METRICS01", "cpu": 10, "memory": 20, "func": "SUNNY"}
    assert httpx.post(f"{stack['vms']}/usage", json=usage, headers=OPERATOR, timeout=30).is_success
    for service, url in stack.items():
        r = httpx.get(f"{url}/metrics", timeout=30)
        assert r.status_code == 200, service
        names |= _names(r.text)
    tmp = tmp_path_factory.mktemp("agent")
    server = ArtifactServer()
    agent = Agent(tmp, server.url).start()
    try:
        r = httpx.get(f"{agent.url}/metrics", timeout=30)
        assert r.status_code == 200
        names |= _names(r.text)
    finally:
        agent.close()
        server.close()
    from services.analysis.metrics import GatewayMetrics, WorkerMetrics

    for metrics in (GatewayMetrics, WorkerMetrics):
        registry = CollectorRegistry()
        metrics(registry)
        names |= _names(generate_latest(registry).decode())
    return names


def _known(name: str, exposed: set[str]) -> bool:
    if name in exposed or name in PROMETHEUS_OWN:
        return True
    for suffix in ("_bucket", "_sum", "_count", "_total"):
        if name.endswith(suffix) and name.removesuffix(suffix) in exposed:
            return True
    return False


def test_every_metric_a_dashboard_or_alert_reads_is_exposed(exposed):
    assert {"vms_node_cpu_percent", "edge_node_cpu_percent", "optimizer_decisions_total"} <= exposed
    queries = dashboard_exprs() + [(r["alert"], r["expr"]) for r in alert_rules()]
    unknown = [
        (where, name)
        for where, expr in queries
        for name in sorted(metric_names(expr))
        if not _known(name, exposed)
    ]
    assert not unknown, unknown
    assert len(queries) > 30


def test_the_name_check_would_catch_a_misspelt_metric(exposed):
    assert metric_names('sum by (kind) (rate(vms_records_stored_totl{x="1"}[5m]))') == {
        "vms_records_stored_totl"
    }
    assert metric_names("label_values(vms_node_cpu_percent, nid)") == {"vms_node_cpu_percent"}
    assert not _known("vms_records_stored_totl", exposed)


def test_the_agent_exposes_node_metrics(exposed):
    for name in (
        "edge_node_cpu_percent",
        "edge_node_memory_percent",
        "edge_node_disk_used_percent",
        "edge_node_network_receive_bytes_total",
        "edge_node_network_transmit_bytes_total",
    ):
        assert name in exposed, name
