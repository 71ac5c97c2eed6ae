"""The console in a real browser against ``edgectl up``: sign-in, the fleet map and table kept
live, an edge's charts, deploying and removing an AI, decisions arriving live, AI packages, and
the messages a page shows when there is no data, a service is down or the session expired."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.console.conftest import new_page, screenshot, sign_in, wait_for

pytestmark = pytest.mark.timeout(600)


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _share_near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 30) -> float:
    return float((np.abs(pixels - np.array(colour)) <= tolerance).all(axis=-1).mean())


def test_sign_in_shows_the_demo_edges_on_the_map_and_the_table_live(stack, browser, tmp_path):
    page = new_page(browser, stack)
    page.goto("/fleet")
    page.wait_for_url("**/login?next=/fleet")  # not signed in: the sign-in page
    page.get_by_label("Operator token").fill("not-the-token-0123456789")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That is not the operator token."
    sign_in(page, stack)

    cookie = next(c for c in page.context.cookies() if c["name"] == "edge_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert stack.token not in page.content()

    # Both demo edges on the map, at their positions, coloured by state.
    points = page.locator("#map a.edge-point")
    points.first.wait_for()
    wait_for("two edges on the map", lambda: points.count() == 2, 30)
    assert sorted(points.nth(i).get_attribute("data-name") for i in range(2)) == [
        "edge-01",
        "edge-02",
    ]
    # Live: the table fills in as the AIs start and report (no reload).
    page.wait_for_function(
        "() => [...document.querySelectorAll('#fleet-table tbody tr')]"
        ".every(r => r.querySelector('.obs-running'))",
        timeout=180_000,
    )
    # Both report: neither is grey (stale); each has its state's colour.
    wait_for(
        "both edges reporting on the map",
        lambda: all(points.nth(i).get_attribute("data-state") != "stale" for i in range(2)),
        120,
    )
    shot = screenshot(page, "fleet")
    map_box = page.locator("#map svg").bounding_box()
    assert map_box and map_box["width"] > 300
    # The points are drawn in their state's colour.
    colours = {"online": (46, 158, 79), "overloaded": (230, 126, 34), "helped": (142, 68, 173),
               "focused": (31, 143, 191), "degraded": (192, 57, 43)}  # fmt: skip
    for i in range(2):
        colour = colours[points.nth(i).get_attribute("data-state")]
        assert _share_near(_pixels(shot), colour, 12) > 0.0003, colour

    # Filters: only edge-02.
    page.get_by_label("Name or nid").fill("edge-02")
    assert page.locator("#fleet-table tbody tr").count() == 1
    assert points.count() == 1
    assert not page.outside and not page.js_errors, (page.outside, page.js_errors)

    # Readable on a phone: the same page in a narrow window, nothing wider than the screen.
    phone = new_page(browser, stack, width=390, height=800)
    sign_in(phone, stack)
    phone.locator("#map a.edge-point").first.wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 400
    screenshot(phone, "fleet-phone")


def test_an_edge_page_fills_its_charts_and_explains(stack, browser):
    page = new_page(browser, stack)
    sign_in(page, stack)
    page.locator("#map a.edge-point[data-name='edge-01']").click()
    page.wait_for_url("**/edges/*")
    page.get_by_role("heading", name="edge-01 (0x01)").wait_for()
    # The charts fill from the VMS's series once the edge has reported (refreshed every 10 s).
    for chart in ("cpu", "memory", "condition"):
        page.locator(f"#chart-{chart} svg .series").first.wait_for(timeout=120_000)
    page.locator("#deployments tbody tr[data-filename='weatherai']").wait_for()
    page.get_by_text("Analysis runs").wait_for()
    assert "weatherai" in page.locator("#explain").inner_text()
    # A line once the series has two points (30 s steps; the chart refreshes every 10 s): one
    # point alone draws nothing (on a loaded machine the first refresh may hold only one).
    page.wait_for_function(
        "() => (document.querySelector('#chart-cpu svg polyline.series')"
        "?.getAttribute('points') || '').trim().split(/\\s+/).length >= 2",
        timeout=150_000,
    )
    shot = screenshot(page, "edge")
    chart = page.locator("#chart-cpu svg").screenshot()
    pixels = np.asarray(Image.open(__import__("io").BytesIO(chart)).convert("RGB")).astype(int)
    assert _share_near(pixels, (31, 95, 191), 20) > 0.0005  # the cpu line is drawn
    assert shot.exists() and not page.js_errors


def test_pin_remove_and_deploy_an_ai_and_watch_its_state(stack, browser):
    page = new_page(browser, stack)
    edge = next(e for e in stack.get("setup", "/edges")["items"] if e["name"] == "edge-02")
    sign_in(page, stack, f"/edges/{edge['id']}")
    row = page.locator("#deployments tbody tr[data-filename='monitoring']")
    row.locator(".obs-running").wait_for(timeout=180_000)

    # Pin first, so that no policy puts it back while we change it.
    page.get_by_role("button", name="Pin", exact=True).click()
    assert "No policy will change" in page.locator("#confirm-text").inner_text()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("button", name="Unpin", exact=True).wait_for()
    assert any(p["edge_id"] == edge["id"] for p in stack.get("optimizer", "/pins"))

    # Remove, confirmed: desired removed, then observed removed.
    row.get_by_role("button", name="Remove").click()
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"#deployments tr[data-filename='monitoring']\")]"
        ".every(r => r.querySelector('.observed').innerText === 'removed')",
        timeout=120_000,
    )
    running = stack.get("setup", "/deployments", edge_id=edge["id"], desired="running")["items"]
    assert all(d["filename"] != "monitoring" for d in running)

    # Deploy it again, confirmed: a new row, pending, then running.
    ai = next(
        a
        for a in stack.get("setup", "/ai-packages", limit=100)["items"]
        if a["filename"] == "monitoring" and a["ai_class"] == "01"
    )
    page.get_by_label("Deploy an AI").select_option(str(ai["id"]))
    page.get_by_role("button", name="Deploy", exact=True).click()
    confirm = page.locator("#confirm-text").inner_text()
    assert confirm == f"Deploy monitoring {ai['version']} on edge-02?"
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"#deployments tr[data-filename='monitoring']\")]"
        ".some(r => r.querySelector('.observed').innerText === 'running')",
        timeout=180_000,
    )
    screenshot(page, "edge-deployed")

    page.get_by_role("button", name="Unpin", exact=True).click()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("button", name="Pin", exact=True).wait_for()
    assert not page.js_errors


def test_a_decision_appears_live_and_the_switches_work(stack, browser):
    page = new_page(browser, stack)
    sign_in(page, stack, "/decisions")
    page.locator("#live.on").wait_for(timeout=30_000)
    # edge-01's weather flips every 20 s: the optimizer swaps its monitoring variant, and the
    # decision arrives on the open page without a reload.
    page.locator("#decision-log li.new").first.wait_for(timeout=180_000)
    fresh = page.locator("#decision-log li.new").first
    policy = fresh.get_attribute("data-policy")
    assert policy in {"environment", "version", "recovery", "overload", "low_confidence", "focus"}
    fresh.get_by_text("Inputs and operations").click()
    assert "inputs" in fresh.locator("pre").inner_text()
    screenshot(page, "decisions")

    # Filter by that policy: only its decisions.
    page.get_by_label("Policy").select_option(policy)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#decision-log li')].every(li => "
        f"li.dataset.policy === '{policy}')"
    )
    # Dry run on, persisted by the optimizer; then off again.
    page.get_by_label("Dry run").check()
    wait_for("dry run on", lambda: stack.get("optimizer", "/control")["dry_run"], 10)
    page.reload()
    page.wait_for_function("() => document.getElementById('dry-run').checked")
    page.get_by_label("Dry run").uncheck()
    wait_for("dry run off", lambda: not stack.get("optimizer", "/control")["dry_run"], 10)
    assert not page.js_errors


def test_the_packages_page_lists_and_uploads_with_a_progress_bar(stack, browser, tmp_path):
    from tests.master.helpers import targz

    page = new_page(browser, stack)
    sign_in(page, stack, "/ai-packages")
    page.locator("#packages tbody tr[data-filename='weatherai']").wait_for()
    assert "ready" in page.locator("#packages tbody tr[data-filename='weatherai']").inner_text()
    archive = tmp_path / "consoledemo.tar.gz"
    archive.write_bytes(
        targz(
            {
                "aipackage.yaml": 'filename: consoledemo\nversion: "01"\nai_class: "42"\n'
                "command: [python, -c, 'import time; time.sleep(3600)']\n",
            }
        )
    )
    page.get_by_label("Archive (zip or tar.gz with aipackage.yaml)").set_input_files(str(archive))
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("uploaded: consoledemo").wait_for(timeout=60_000)
    assert page.locator("#upload-progress").evaluate("p => p.value") == 100
    page.locator("#packages tbody tr[data-filename='consoledemo']").wait_for(timeout=30_000)
    screenshot(page, "ai-packages")
    assert not page.js_errors


def _upload_rolldemo(stack, version: str) -> dict:
    """An AI package rolldemo at ``version``, uploaded to the master and built (ready)."""
    from tests.master.helpers import targz

    archive = targz(
        {
            "aipackage.yaml": f'filename: rolldemo\nversion: "{version}"\nai_class: "42"\n'
            "command: [python, -c, 'import time; time.sleep(3600)']\n",
        }
    )
    r = httpx.post(
        f"{stack.urls['master']}/ai-packages",
        content=archive,
        headers={**stack.headers, "content-type": "application/gzip"},
        timeout=60,
    )
    assert r.status_code == 202, r.text

    def ready() -> dict | None:
        items = stack.get("setup", "/ai-packages", limit=200)["items"]
        return next(
            (
                p
                for p in items
                if p["filename"] == "rolldemo"
                and p["version"] == version
                and p["status"] == "ready"
            ),
            None,
        )

    wait_for(f"rolldemo {version} built", ready, 120, stack)
    return ready()


def _optimizer_cycle(stack) -> None:
    r = httpx.post(f"{stack.urls['optimizer']}/cycle", headers=stack.headers, timeout=60)
    assert r.status_code == 200, r.text


def test_a_rollout_paused_resumed_and_rolled_back_from_the_packages_page(stack, browser):
    v1 = _upload_rolldemo(stack, "01")
    edge = next(e for e in stack.get("setup", "/edges")["items"] if e["name"] == "edge-01")
    r = httpx.post(
        f"{stack.urls['setup']}/deployments",
        json={"edge_id": edge["id"], "ai_id": v1["id"]},
        headers=stack.headers,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    deployment = r.json()["id"]
    v2 = _upload_rolldemo(stack, "02")

    def rollout() -> dict | None:
        _optimizer_cycle(stack)
        found = [r for r in stack.get("optimizer", "/rollouts") if r["filename"] == "rolldemo"]
        if found and found[0]["status"] == "active":
            # Paused at once through the optimizer's own API: a one-edge rollout completes as
            # soon as its edge runs 02, and a paused one is not judged.
            r = httpx.post(
                f"{stack.urls['optimizer']}/rollouts/{found[0]['id']}/pause",
                headers=stack.headers,
            )
            assert r.status_code == 200, r.text
            return found[0]
        return None

    started = wait_for("the rolldemo 02 rollout", rollout, 120, stack, every=2)
    assert str(edge["id"]) in started["members"]
    on = lambda: stack.get("setup", f"/deployments/{deployment}")["ai_id"]  # noqa: E731
    wait_for("edge-01 upgraded to 02 (wave 0)", lambda: on() == v2["id"], 60, stack)

    page = new_page(browser, stack)
    sign_in(page, stack, "/ai-packages")
    page.locator("#live.on").wait_for(timeout=30_000)
    row = page.locator("#rollouts tbody tr[data-filename='rolldemo']")
    state = row.locator(".rollout-state")
    row.wait_for()

    def shows(*texts: str) -> None:
        page.wait_for_function(
            "ts => ts.includes(document.querySelector(\"#rollouts tr[data-filename='rolldemo'] "
            '.rollout-state").innerText)',
            arg=list(texts),
            timeout=30_000,
        )

    # Paused elsewhere (the optimizer's API, above): the page shows it.
    shows("paused")
    # Resume, confirmed (a one-edge rollout may complete right after: both are fine here).
    row.get_by_role("button", name="Resume").click()
    assert "rolldemo 02" in page.locator("#confirm-text").inner_text()
    page.get_by_role("button", name="Confirm").click()
    shows("active", "completed")
    [now] = [r for r in stack.get("optimizer", "/rollouts") if r["id"] == started["id"]]
    assert now["status"] in ("active", "completed")
    # Pause from the page: only while still active (the optimizer answers 409 otherwise).
    if state.inner_text() == "active" and row.get_by_role("button", name="Pause").count():
        try:
            row.get_by_role("button", name="Pause").click(timeout=10_000)
        except PlaywrightTimeout:  # it completed meanwhile: its row has no Pause any more
            shows("completed")
        else:
            assert "Pause the rolldemo 02 rollout?" in page.locator("#confirm-text").inner_text()
            page.get_by_role("button", name="Confirm").click()
            shows("paused", "completed")

    # Roll back: cancelled first (nothing happens), then confirmed.
    row.get_by_role("button", name="Roll back").click()
    assert "goes back to the version it ran before" in page.locator("#confirm-text").inner_text()
    page.get_by_role("button", name="Cancel").click()
    [now] = [r for r in stack.get("optimizer", "/rollouts") if r["id"] == started["id"]]
    assert now["status"] in ("paused", "completed"), "cancelled: nothing changed"
    row.get_by_role("button", name="Roll back").click()
    page.get_by_role("button", name="Confirm").click()
    shows("rolled back")
    assert row.get_by_role("button").count() == 0  # nothing more to do with it
    page.get_by_text("rolldemo 02 rollout: rolled back.").wait_for()

    # The optimizer moves edge-01 back to 01 (a rollback decision) and leaves it there.
    def back() -> bool:
        _optimizer_cycle(stack)
        return on() == v1["id"]

    wait_for("edge-01 back on rolldemo 01", back, 60, stack, every=2)
    decisions = stack.get(
        "optimizer", "/decisions", policy="version", action="rollback", edge="edge-01"
    )["items"]
    assert any("an operator rolled back the rolldemo 02 rollout" in d["reason"] for d in decisions)
    _optimizer_cycle(stack)
    assert on() == v1["id"]
    screenshot(page, "ai-packages-rolled-back")
    assert not page.js_errors


def test_no_data_a_service_down_and_an_expired_session_each_say_so(stack, browser, tmp_path):
    page = new_page(browser, stack)
    sign_in(page, stack)
    # An edge that never reported: its charts say there is no data (no empty box).
    r = httpx.post(
        f"{stack.urls['setup']}/edges", json={"name": "edge-quiet"}, headers=stack.headers
    )
    assert r.status_code == 201, r.text
    page.goto(f"/edges/{r.json()['id']}")
    page.get_by_text("No cpu data in this period.").wait_for(timeout=30_000)
    page.get_by_text("No AI is deployed on this edge.").wait_for()
    # An edge that does not exist.
    page.goto("/edges/999999")
    page.get_by_text("Edge 999999 does not exist.").wait_for()

    # A service down: a second console whose optimizer is unreachable.
    from tests.helpers.env import free_port
    from tests.helpers.processes import Proc, edgectl, wait_http

    port = free_port()
    # Its own credential, issued by the stack's setup (a console holds no operator token).
    r = httpx.post(
        f"{stack.urls['setup']}/credentials",
        json={"service": "console", "ttl_days": 1},
        headers=stack.headers,
    )
    assert r.status_code == 201, r.text
    env = dict(__import__("os").environ)
    env.update(
        EDGE_ENV="production",
        EDGE_DATABASE_URL=stack.database_url.replace("postgresql://", "postgresql+asyncpg://"),
        EDGE_CONSOLE_TOKEN=r.json()["token"],
        EDGE_SERVICE_TOKEN="console-test-service-token-0123",
        EDGE_EDGE_TOKEN_SECRET="console-test-edge-secret-012345",
        EDGE_SETUP_URL=stack.urls["setup"],
        EDGE_VMS_URL=stack.urls["vms"],
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
        EDGE_LOG_FORMAT="text",
    )
    proc = Proc(
        edgectl("serve", "console", "--port", str(port)), env=env, log_path=tmp_path / "c.log"
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc, timeout=60)
        other = new_page(browser, stack)
        other.goto(f"http://127.0.0.1:{port}/login")
        other.get_by_label("Operator token").fill(stack.token)
        other.get_by_role("button", name="Sign in").click()
        other.get_by_text("optimizer is not answering").first.wait_for(timeout=30_000)
        assert other.locator("#map a.edge-point").count() >= 2  # the rest still shows
        other.goto(f"http://127.0.0.1:{port}/decisions")
        other.get_by_text("optimizer unreachable").first.wait_for(timeout=30_000)
        screenshot(other, "service-down")
        assert "Traceback" not in other.content()
    finally:
        proc.stop()

    # The session expires: the next page asks to sign in again, and an open page says so.
    page.goto("/fleet")
    page.locator("#map a.edge-point").first.wait_for()
    with ThreadPoolExecutor(1) as pool:  # Playwright's own loop runs in this thread
        pool.submit(asyncio.run, _expire_sessions(stack.database_url)).result()
    page.get_by_text("Your session has expired.").wait_for(timeout=30_000)
    assert page.get_by_role("link", name="Sign in again").is_visible()
    page.goto("/decisions")
    page.wait_for_url("**/login?next=/decisions&reason=expired")
    assert "Your session has expired. Sign in again." in page.get_by_role("alert").inner_text()
    screenshot(page, "session-expired")


async def _expire_sessions(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE console.sessions SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()


def test_sign_out_ends_the_session(stack, browser):
    page = new_page(browser, stack)
    sign_in(page, stack)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login?reason=signed-out")
    page.goto("/fleet")
    page.wait_for_url("**/login?next=/fleet")
    time.sleep(0)
