"""How every edge program starts, ticks once a second, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from edge_ai.common.config import ConfigError, EdgeConfig
from edge_ai.common.local_api import LocalApi, prometheus_text
from edge_ai.common.logs import configure_logging
from edge_ai.common.vms_client import VmsClient

log = logging.getLogger("edge_ai")

EXIT_CONFIG = 2


class Stop:
    """Set by SIGTERM/SIGINT; the program's loops wait on it with a timeout instead of sleeping."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.event.set)

    async def wait(self, seconds: float) -> bool:
        """True when asked to stop, False when ``seconds`` passed first."""
        try:
            await asyncio.wait_for(self.event.wait(), max(0.0, seconds))
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            return False
        return True


async def every(period: float, stop: Stop, tick: Callable[[], Awaitable[None] | None]) -> None:
    """Call ``tick`` every ``period`` seconds on the wall-clock grid (12:00:01.000, ...02.000) until
    stopped.

    A slow tick skips the ticks it overran rather than bunching them up.
    """
    while not stop.event.is_set():
        now = time.time()
        next_at = (int(now / period) + 1) * period
        if await stop.wait(next_at - now):
            return
        result = tick()
        if asyncio.iscoroutine(result):
            await result


def start_api(
    config: EdgeConfig,
    program: str,
    vms: VmsClient,
    extra: Callable[[], dict[str, Any]] | None = None,
) -> LocalApi | None:
    if config.api_port is None:
        return None
    api = LocalApi(config.api_host, config.api_port)

    def status() -> dict[str, Any]:
        body: dict[str, Any] = {"program": program, "vms": vms.sender.stats()}
        if extra:
            body.update(extra())
        return body

    def metrics() -> str:
        s = vms.sender.stats()
        return prometheus_text(
            "edge_vms",
            {
                "submitted_total": s["submitted"],
                "delivered_total": s["delivered"],
                "rejected_total": s["rejected"],
                "retries_total": s["retries"],
                "buffered_records": s["buffered"],
                "dropped_total": s["dropped"],
                "reachable": s["reachable"],
            },
            {
                "dropped_total": "records dropped because the on-disk buffer was full",
                "buffered_records": "records waiting in the on-disk buffer",
            },
        )

    api.route("GET", "/healthz", lambda _body: (200, {"status": "ok"}))
    api.route("GET", "/status", lambda _body: (200, status()))
    api.text("/metrics", metrics)
    return api


def run_program(
    program: str, load: Callable[[], Any], main: Callable[[Any, Stop], Awaitable[None]]
) -> int:
    """Load the configuration (exit 2 with the problem on stderr), set up logging, run ``main``."""
    try:
        options = load()
    except ConfigError as exc:
        print(f"{program}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    config: EdgeConfig = options.config
    configure_logging(
        program,
        level=config.log_level,
        fmt=config.log_format,
        secrets=tuple(s for s in (config.token,) if s),
    )

    async def runner() -> None:
        stop = Stop()
        stop.install()
        await main(options, stop)

    try:
        asyncio.run(runner())
    except ConfigError as exc:
        print(f"{program}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0
