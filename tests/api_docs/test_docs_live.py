"""The documentation against a running stack (issue 13): every documented request example
succeeds (2xx, each documented), and Swagger UI works in a real browser with no network but
loopback.

The services run as real processes on a database of their own (tests.security.stack); the
browser is the system's Chromium driven by Playwright, every request outside loopback refused
and recorded."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from shared.api_docs import request_example
from tests.helpers.env import OPERATOR, OPERATOR_TOKEN
from tests.security.stack import SERVICES, running_services

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from running_services(tmp_path_factory)


def _url(base: str, path: str, op: dict[str, Any]) -> str:
    """Path parameters from their documented example, else 1 (the first row the examples
    before it created)."""
    examples = {
        p["name"]: p.get("example", p.get("schema", {}).get("examples", [None])[0])
        for p in op.get("parameters", [])
        if p["in"] == "path"
    }
    return base + re.sub(r"\{(\w+)\}", lambda m: str(examples.get(m.group(1)) or 1), path)


def test_every_documented_request_example_answers_as_documented(services):
    ran: list[str] = []
    problems: list[str] = []
    with httpx.Client(timeout=30, headers=OPERATOR) as client:
        for service in SERVICES:  # setup first: the rows the others' examples name
            doc = client.get(f"{services[service]}/openapi.json").json()
            schemas = doc["components"]["schemas"]
            for path, operations in doc["paths"].items():
                for method, op in operations.items():
                    example = request_example(op, schemas)
                    if example is None:
                        continue
                    url = _url(services[service], path, op)
                    r = client.request(method.upper(), url, json=example)
                    key = (service, method.upper(), path)
                    ran.append(f"{service} {method.upper()} {path} -> {r.status_code}")
                    documented = str(r.status_code) in op["responses"]
                    ok = 200 <= r.status_code < 300
                    body = r.json() if r.content else None
                    if isinstance(body, dict) and body.get("code", "0000") != "0000":
                        ok = False  # a field route's failure (its envelope)
                    if isinstance(body, dict) and body.get("rejected", 0) not in (0, None):
                        ok = False  # a batch with a record refused
                    if not (ok and documented):
                        problems.append(f"{key} {example} -> {r.status_code} {r.text[:300]}")
    print("\n".join(ran))
    assert len(ran) >= 10, ran
    assert not problems, "\n".join(problems)


# --- Swagger UI and ReDoc in a real browser ---------------------------------------------------


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return (
        host in ("localhost", "::1")
        or host.startswith("127.")
        or url.startswith(("data:", "blob:", "about:"))
    )


def _share(pixels: Any, colour: tuple[int, int, int], tolerance: int = 12) -> float:
    """The share of the screenshot's pixels within ``tolerance`` of ``colour``."""
    import numpy as np

    near = (np.abs(pixels.astype(int) - np.array(colour)) <= tolerance).all(axis=-1)
    return float(near.mean())


@pytest.mark.timeout(120)
def test_swagger_ui_authorize_and_a_call_in_a_browser_offline(services, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    if not __import__("os").path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium")
    started = time.monotonic()
    outside: list[str] = []
    requests: list[str] = []
    refused: list[str] = []
    base = services["setup"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def guard(route: Any) -> None:
                url = route.request.url
                if _loopback(url):
                    route.continue_()
                else:
                    outside.append(url)
                    route.abort()

            page.route("**/*", guard)
            page.on("request", lambda request: requests.append(request.url))
            # What the pages' policy refused (ReDoc's CDN logo): refused by the browser itself.
            page.on(
                "console",
                lambda msg: refused.append(msg.text) if "Content Security" in msg.text else None,
            )

            page.goto(f"{base}/docs")
            page.wait_for_selector(".swagger-ui .information-container .title", timeout=15000)
            assert "Edge platform: setup" in page.inner_text(".information-container .title")
            # Authorize with the operator's token (the bearer scheme of the document).
            page.click("button.authorize")
            page.fill(".auth-container input", OPERATOR_TOKEN)
            page.click(".auth-btn-wrapper button.authorize")
            page.click(".auth-btn-wrapper button.btn-done")
            # One call: list the edges, executed from the page.
            op = page.locator("#operations-edges-list_edges_edges_get")
            op.locator(".opblock-summary").click()
            try_it = op.locator("button.try-out__btn")
            if try_it.count() and "Try it out" in try_it.inner_text():
                try_it.click()
            op.locator("button.execute").click()
            status = op.locator(".live-responses-table .response .response-col_status").first
            status.wait_for(timeout=15000)
            assert status.inner_text().strip().startswith("200"), status.inner_text()
            body = op.locator(".live-responses-table .response-col_description pre").first
            assert '"items"' in body.inner_text()
            page.locator(".information-container").scroll_into_view_if_needed()
            png = page.screenshot(full_page=False)

            page.goto(f"{base}/redoc")
            page.wait_for_selector("h1", timeout=15000)
            assert "Edge platform: setup" in page.inner_text("h1")
        finally:
            browser.close()
    elapsed = time.monotonic() - started

    assert not outside, f"requests left loopback: {outside}"
    assert any("/docs/assets/swagger-ui-bundle.js" in url for url in requests)
    assert any("/redoc/assets/redoc.standalone.js" in url for url in requests)
    # The rendered page, by its pixels: not blank, and Swagger UI's own colours are there (the
    # GET badge's blue, the POST badge's green, the title's dark slate).
    import numpy as np

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    (Path(str(tmp_path)) / "swagger-ui.png").write_bytes(png)
    white = _share(image, (255, 255, 255), tolerance=6)
    assert white < 0.9, f"the page is {white:.0%} white: blank"
    assert _share(image, (0x61, 0xAF, 0xFE)) > 0.001, "no GET badge blue"
    assert _share(image, (0x49, 0xCC, 0x90)) > 0.001, "no POST badge green"
    assert _share(image, (0x3B, 0x41, 0x51), tolerance=20) > 0.001, "no Swagger UI title colour"
    print(f"browser test: {elapsed:.1f} s, {len(requests)} requests, all on loopback")
    print("refused by the pages' policy:", refused)
    print(f"screenshot: {tmp_path}/swagger-ui.png; white {white:.0%}")
    assert elapsed < 30
