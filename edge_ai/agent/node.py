"""The node's vital signs for the heartbeat (psutil)."""

from __future__ import annotations

import os
import time

import psutil


def prime_cpu_percent() -> None:
    """psutil measures cpu between two calls: the first one only starts the clock."""
    psutil.cpu_percent(interval=None)


def node_vitals(workdir: str) -> dict:
    """Blocking (reads /proc); run in a thread."""
    mem = psutil.virtual_memory()
    boot = psutil.boot_time()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "boot_time": boot,
        "node_uptime_s": round(time.time() - boot, 1),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count() or 1,
        "load_avg": [round(x, 2) for x in load],
        "memory_total_bytes": mem.total,
        "memory_available_bytes": mem.available,
        "memory_percent": mem.percent,
        "disk_free_bytes": psutil.disk_usage(workdir).free,
    }
