"""Monitoring AI: every second ``POST /usage`` with this box's CPU and memory use.

``{"code": "0000", "message": "success", "username": <node name>, "cpu": 12.5, "memory": 43.1,
"func": "SUNNY", "nid": "0x01", "ts": "2026-11-22T03:00:00.000Z"}`` -- the field's payload plus
``nid`` (left out when no node id is configured) and ``ts``, our extensions. ``func`` is the variant
running: ``--variant`` / $MONITORING_VARIANT.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psutil

from edge_ai.common.config import ConfigError, EdgeConfig, load_config
from edge_ai.common.options import base_parser, env_default
from edge_ai.common.runtime import Stop, every, run_program, start_api
from edge_ai.common.timefmt import utc_stamp
from edge_ai.common.vms_client import VmsClient

log = logging.getLogger("edge_ai.monitoring")

VARIANTS = ("SUNNY", "RAINY")


@dataclass
class MonitoringOptions:
    config: EdgeConfig
    variant: str
    username: str
    interval: float


def parse_options(argv: list[str] | None = None) -> MonitoringOptions:
    parser = base_parser(
        "monitoring", "Monitoring AI (ai_class 01 SUNNY, 02 RAINY): posts /usage every second."
    )
    parser.add_argument(
        "--variant",
        default=env_default("MONITORING_VARIANT"),
        help="SUNNY or RAINY, sent as func ($MONITORING_VARIANT)",
    )
    args = parser.parse_args(argv)
    if not args.variant:
        raise ConfigError("--variant (or $MONITORING_VARIANT) is required: SUNNY or RAINY")
    variant = args.variant.strip().upper()
    if variant not in VARIANTS:
        raise ConfigError(f"--variant: expected one of {', '.join(VARIANTS)}, got {args.variant!r}")
    if args.interval <= 0:
        raise ConfigError("--interval must be positive")
    config = load_config(args.config)
    if args.api_port is not None:
        config = replace(config, api_port=args.api_port)
    return MonitoringOptions(
        config=config,
        variant=variant,
        username=config.node_name or socket.gethostname(),
        interval=args.interval,
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
        "monitoring AI (%s) as %s posting to %s every %gs",
        options.variant,
        options.username,
        config.vms_url,
        options.interval,
    )

    def tick() -> None:
        vms.submit(
            "usage",
            usage_record(
                options,
                psutil.cpu_percent(None),
                psutil.virtual_memory().percent,
                datetime.now(UTC),
            ),
        )

    try:
        await every(options.interval, stop, tick)
    finally:
        if api is not None:
            await api.close()
        await vms.close()
        log.info("monitoring AI stopped")


def main(argv: list[str] | None = None) -> int:
    return run_program("monitoring", lambda: parse_options(argv), run)
