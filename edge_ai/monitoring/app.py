"""Monitoring AI: every second ``POST /usage`` with this box's CPU and memory use.

``{"code": "0000", "message": "success", "username": <node name>, "cpu": 12.5, "memory": 43.1,
"func": "SUNNY", "nid": "0x01", "ts": "2026-11-22T03:00:00.000Z"}`` -- the field's payload plus
``nid`` (left out when no node id is configured) and ``ts``, our extensions. ``func`` is the variant
running: ``--variant`` / $MONITORING_VARIANT.

A simulated load (demos, tests): ``--load-profile`` / $MONITORING_LOAD_PROFILE, ``at:cpu:memory``
steps (``0:25:40,40:96:55,110:25:40``: from second 40 of each period cpu 96 % and memory 55 %...),
looped every ``--load-period`` seconds of the wall clock (so a restarted program, or another edge's,
stays on the same beat). The records then carry ``"simulated": true``; the box's own load is not
read.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import psutil

from edge_ai.common.config import ConfigError, EdgeConfig, load_config
from edge_ai.common.options import ProgramSettings
from edge_ai.common.runtime import Stop, every, run_program, start_api
from edge_ai.common.timefmt import utc_stamp
from edge_ai.common.vms_client import VmsClient
from edge_common.settings import load_settings, setting
from edge_common.vocabulary import Param

log = logging.getLogger("edge_ai.monitoring")

VARIANTS = ("SUNNY", "RAINY")


@dataclass
class MonitoringOptions:
    config: EdgeConfig
    variant: str
    username: str
    interval: float
    load_profile: list[tuple[float, float, float]] | None = None  # (at_s, cpu, memory) steps
    load_period_s: float = 240.0
    analysis_for: str | None = None  # a helper copy (the optimizer's hand-over): nothing to report


def parse_load_profile(text: str) -> list[tuple[float, float, float]]:
    """``0:25:40,40:96:55`` -> [(0, 25, 40), (40, 96, 55)], sorted by time."""
    steps = []
    for part in text.split(","):
        fields = part.strip().split(":")
        try:
            at, cpu, memory = (float(f) for f in fields)
        except ValueError:
            raise ConfigError(
                f"--load-profile: expected at:cpu:memory steps separated by commas, got {part!r}"
            ) from None
        if at < 0 or not 0 <= cpu <= 100 or not 0 <= memory <= 100:
            raise ConfigError(f"--load-profile: {part!r}: at >= 0, cpu and memory in [0, 100]")
        steps.append((at, cpu, memory))
    return sorted(steps)


def simulated_load(
    steps: list[tuple[float, float, float]], period_s: float, now: float
) -> tuple[float, float]:
    """(cpu, memory) of the profile at wall-clock time ``now``: the last step at or before the
    point in the period (the last step of the period before the first one)."""
    point = now % period_s
    current = steps[-1]
    for step in steps:
        if step[0] <= point:
            current = step
    return current[1], current[2]


@dataclass
class MonitoringSettings(ProgramSettings):
    variant: str | None = setting(
        None, env="MONITORING_VARIANT", help="SUNNY or RAINY, sent as func"
    )
    load_profile: str | None = setting(
        None,
        env="MONITORING_LOAD_PROFILE",
        help="simulated load instead of this box's: at:cpu:memory steps, e.g. "
        "0:25:40,40:96:55 (demos and tests)",
    )
    load_period: float = setting(
        240.0,
        env="MONITORING_LOAD_PERIOD_S",
        help="the simulated profile repeats every this many seconds of the wall clock",
    )
    analysis_for: str | None = setting(
        None,
        env=Param.ANALYSIS_FOR,
        help="a helper copy (the optimizer's hand-over): nothing to report",
    )


def parse_options(argv: list[str] | None = None) -> MonitoringOptions:
    args = load_settings(
        MonitoringSettings,
        argv,
        prog="monitoring",
        description="Monitoring AI (ai_class 01 SUNNY, 02 RAINY): posts /usage every second.",
    )
    if not args.variant:
        raise ConfigError("--variant (or $MONITORING_VARIANT) is required: SUNNY or RAINY")
    variant = args.variant.strip().upper()
    if variant not in VARIANTS:
        raise ConfigError(f"--variant: expected one of {', '.join(VARIANTS)}, got {args.variant!r}")
    if args.interval <= 0 or args.load_period <= 0:
        raise ConfigError("--interval and --load-period must be positive")
    profile = parse_load_profile(args.load_profile) if args.load_profile else None
    config = load_config(args.config)
    if args.api_port is not None:
        config = replace(config, api_port=args.api_port)
    return MonitoringOptions(
        config=config,
        variant=variant,
        username=config.node_name or socket.gethostname(),
        interval=args.interval,
        load_profile=profile,
        load_period_s=args.load_period,
        analysis_for=args.analysis_for,
    )


def usage_record(
    options: MonitoringOptions, cpu: float, memory: float, when: datetime
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "code": "0000",
        "message": "success",
        "username": options.username,
        "cpu": round(cpu, 1),
        "memory": round(memory, 1),
        "func": options.variant,
        # Our extension: when the sample was taken, so a record sent late from the buffer is
        # stored at its own time rather than at its arrival.
        "ts": utc_stamp(when),
    }
    if options.config.node_id:
        record["nid"] = options.config.node_id
    if options.load_profile:
        record["simulated"] = True  # ours: a demo's scripted load, not this box's
    return record


async def run(options: MonitoringOptions, stop: Stop) -> None:
    config = options.config
    # Each buffer file is one process's: both variants may run side by side during a swap.
    vms = VmsClient(config, program=f"monitoring-{options.variant.lower()}")
    vms.start()
    api = start_api(config, "monitoring", vms, lambda: {"variant": options.variant})
    if api is not None:
        await api.start()
    # cpu_percent(None) measures since the previous call: prime it so the first post is real.
    psutil.cpu_percent(None)
    log.info(
        "monitoring AI (%s) as %s posting to %s every %gs%s",
        options.variant,
        options.username,
        config.vms_url,
        options.interval,
        f"; SIMULATED load, profile every {options.load_period_s:g} s"
        if options.load_profile
        else "",
    )

    if options.analysis_for:
        # The optimizer copies an overloaded edge's AIs to a helper edge; this program reports its
        # own box's load, which is no help to the other edge: the copy stays idle.
        log.info(
            "a helper copy for node %s: this box's load is not its; idle", options.analysis_for
        )
        await stop.event.wait()

    def tick() -> None:
        now = datetime.now(timezone.utc)
        if options.load_profile:
            cpu, memory = simulated_load(options.load_profile, options.load_period_s, time.time())
        else:
            cpu, memory = psutil.cpu_percent(None), psutil.virtual_memory().percent
        vms.submit("usage", usage_record(options, cpu, memory, now))

    try:
        await every(options.interval, stop, tick)
    finally:
        if api is not None:
            await api.close()
        await vms.close()
        log.info("monitoring AI stopped")


def main(argv: list[str] | None = None) -> int:
    return run_program("monitoring", lambda: parse_options(argv), run)
