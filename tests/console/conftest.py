"""The console against the whole platform as a user starts it: ``edgectl up`` (embedded Postgres,
setup, master, optimizer, VMS, the analysis gateway with a CPU worker on the embedded Redis, two
edge agents running the demo AIs, and the console), driven by the system's Chromium through
Playwright. Screenshots of each page go to ``test-artifacts/console/`` (git-ignored)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.database import asyncpg_url, create_database, drop_database
from tests.helpers.processes import REPO
from tests.helpers.stack import stack_port_env

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "console"


@dataclass
class Stack:
    console: str
    urls: dict[str, str]
    token: str
    database_url: str
    log: Path
    proc: subprocess.Popen

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, service: str, path: str, **params: Any) -> Any:
        r = httpx.get(
            f"{self.urls[service]}{path}", params=params, headers=self.headers, timeout=10
        )
        r.raise_for_status()
        return r.json()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def wait_for(what: str, check, timeout: float, stack: Stack | None = None, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack is not None and stack.proc.poll() is not None:
            raise AssertionError(f"edgectl up exited while waiting for {what}:\n{stack.log_tail()}")
        try:
            value = check()
        except (httpx.HTTPError, KeyError, ValueError):
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(
        f"not seen within {timeout:.0f}s: {what}\n{stack.log_tail() if stack else ''}"
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("console-stack")
    data_dir = tmp / "data"
    # Every port the stack listens on picked free (MQTT and Postgres included): an
    # `edgectl up` on the same machine holds the defaults.
    port_env, ports = stack_port_env()
    prefixes = ("EDGE_", "SETUP_", "MASTER_", "VMS_", "OPTIMIZER_", "ANALYSIS_", "CONSOLE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    # The machine's Postgres, a database of this run's own (dropped at the end).
    db_name = f"edgeconsole_{uuid.uuid4().hex[:10]}"
    database_url = asyncio.run(create_database(db_name))
    env.update(
        EDGE_DATABASE_URL=database_url,
    )
    env.update(
        port_env,
        EDGE_UP_DATA_DIR=str(data_dir),
        EDGE_UP_WEATHER_PERIOD_S="20",
        # The demo story (its own test: tests/stack/test_story.py) hands edge-01's AIs to
        # edge-02 now and then: a second monitoring row there would make "Remove" ambiguous.
        EDGE_UP_STORY="false",
        # A small random-weights model on the CPU worker; a threshold low enough that its
        # (meaningless) boxes come back, so that there is something to draw.
        ANALYSIS_MODEL="yolov8n.yaml",
        ANALYSIS_IMGSZ="160",
        ANALYSIS_CONF="0.00001",
        ANALYSIS_RATE_PER_S="0",
        CONSOLE_LIVE_INTERVAL_S="1",
        OMP_NUM_THREADS="1",
    )
    log = tmp / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgectl.main", "up", "--plain"],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    services = ("console", "setup", "master", "optimizer", "vms", "analysis")
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in services}
    stack = Stack(
        console=urls["console"],
        urls=urls,
        token="",
        database_url=asyncpg_url(database_url),
        log=log,
        proc=proc,
    )
    try:
        secrets = data_dir / "secrets.json"
        wait_for("the stack's secrets", secrets.exists, 60, stack)
        stack.token = json.loads(secrets.read_text())["EDGE_OPERATOR_TOKEN"]
        wait_for("demo fleet seeded", lambda: "demo fleet seeded" in log.read_text(), 240, stack)
        yield stack
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        asyncio.run(drop_database(db_name))


@pytest.fixture(scope="module")  # closed after each module: its event loop with it
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (scripts/test.sh installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
            ],
        )
        yield browser
        browser.close()


def new_page(browser: Any, stack: Stack, *, width: int = 1280, height: int = 900) -> Any:
    """A fresh browser context (no cookie) whose requests outside loopback are refused."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, base_url=stack.console, accept_downloads=True
    )
    outside: list[str] = []

    def route(r):
        host = r.request.url.split("/")[2].split(":")[0] if "://" in r.request.url else ""
        if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            return r.continue_()
        outside.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.outside = outside  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def sign_in(page: Any, stack: Stack, path: str = "/fleet") -> None:
    """Open ``path``, signed in on the way (the sign-in page sends the browser back there)."""
    base = path.split("#")[0]
    page.goto(base)
    page.get_by_label("Operator token").fill(stack.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{base}")
    if base != path:
        page.goto(path)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
