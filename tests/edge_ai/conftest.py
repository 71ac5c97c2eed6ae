from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from edge_ai.common.config import EdgeConfig


async def eventually(
    check: Callable[[], bool], *, timeout: float = 20.0, what: str = "condition"
) -> None:
    """Wait for something the background sender does (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


def client_config(url: str, buffer_dir: Path, **overrides) -> EdgeConfig:
    values = dict(
        vms_url=url,
        node_id="0x01",
        buffer_dir=buffer_dir,
        backoff_min=0.05,
        backoff_max=0.3,
        http_timeout=2.0,
    )
    values.update(overrides)
    return EdgeConfig(**values)
