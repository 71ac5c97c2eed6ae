"""Live view through NAT, as the operator meets it: sign in, open edge-01, click Live. The console
asks the master, the master sends the request over MQTT to edge-01's pull agent, the agent writes
the view file its YOLO worker watches, the worker posts annotated frames to the VMS, the console
streams them to the page; a second viewer shares the same view. Closing the last page withdraws
the request: the VMS stops receiving."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from tests.console.conftest import new_page, screenshot, sign_in, wait_for


def _edge(stack, name: str) -> dict:
    return next(e for e in stack.get("setup", "/edges")["items"] if e["name"] == name)


def _worker_posting(stack, nid: str) -> bool:
    """The YOLO worker has loaded its model and reads frames: its summaries reach the VMS."""
    return bool(stack.get("vms", "/detections", nid=nid, limit=1)["items"])


def test_live_view_shows_frames_within_two_seconds_and_stops_when_the_page_closes(stack, browser):
    edge = _edge(stack, "edge-01")
    nid = edge["nid"]
    wait_for(
        "edge-01's YOLO worker posting", lambda: _worker_posting(stack, nid), 240, stack, every=2
    )
    before = stack.get("vms", f"/live/{nid}")["frames"]
    assert stack.get("vms", f"/live/{nid}")["frames"] == before  # nothing flows unwatched

    page = new_page(browser, stack)
    sign_in(page, stack, f"/edges/{edge['id']}")
    page.get_by_role("heading", name=f"edge-01 ({nid})").wait_for()
    counter = page.locator("#live-counter")
    clicked = time.monotonic()
    page.get_by_role("button", name="Live", exact=True).click()
    page.wait_for_function(
        "() => Number(document.getElementById('live-counter').dataset.seq || 0) > 0", timeout=2000
    )
    first_after = time.monotonic() - clicked
    first = int(counter.get_attribute("data-seq"))
    page.wait_for_function(
        f"() => Number(document.getElementById('live-counter').dataset.seq || 0) > {first}",
        timeout=3000,
    )
    assert page.locator("#live-frame").get_attribute("src").startswith("data:image/jpeg;base64,")
    assert first_after < 2.0
    state = stack.get("vms", f"/live/{nid}")
    assert state["frames"] > before and state["problem"] is None
    screenshot(page, "live-view")
    assert page.outside == [] and page.js_errors == []

    # A second viewer shares the one view: it gets frames at once, and keeps getting them after
    # the first viewer goes (the request is withdrawn only when the last viewer leaves).
    second = new_page(browser, stack)
    sign_in(second, stack, f"/edges/{edge['id']}")
    second.get_by_role("heading", name=f"edge-01 ({nid})").wait_for()
    second.get_by_role("button", name="Live", exact=True).click()
    seq = "Number(document.getElementById('live-counter').dataset.seq || 0)"
    second.wait_for_function(f"() => {seq} > 0", timeout=4000)
    page.context.close()  # the first viewer goes; the second still watches
    time.sleep(1.0)
    shared = second.evaluate(f"() => {seq}")
    second.wait_for_function(f"() => {seq} > {shared}", timeout=5000)
    assert second.outside == [] and second.js_errors == []

    second.context.close()  # the last viewer goes: the console withdraws the request
    time.sleep(2.0)
    stopped = stack.get("vms", f"/live/{nid}")["frames"]
    time.sleep(3.0)
    assert stack.get("vms", f"/live/{nid}")["frames"] == stopped, "the edge still sends"


def test_a_demo_event_makes_a_clip_that_appears_in_the_console_and_plays(stack, browser):
    """edge-01's worker makes a demo event on purpose every 20 s under `edgectl up` (its random
    weights detect nothing real): the clip goes up to the VMS and plays on the edge's page."""
    edge = _edge(stack, "edge-01")
    nid = edge["nid"]
    found = wait_for(
        "a clip of edge-01 at the VMS",
        lambda: stack.get("vms", "/clips", nid=nid)["items"],
        180,
        stack,
        every=2,
    )
    clip = found[0]
    assert "demo" in clip["classes"] and clip["size"] > 0 and clip["duration_s"] > 0

    page = new_page(browser, stack)
    sign_in(page, stack, f"/edges/{edge['id']}")
    row = page.locator(f"#clips tr[data-clip='{clip['id']}']")
    row.wait_for(timeout=10000)
    assert "triggered on purpose" in row.inner_text()
    row.get_by_role("button", name="Play").click()
    page.wait_for_function(
        "() => { const v = document.getElementById('clip-player');"
        " return !v.error && v.readyState >= 2 && v.duration > 0 && v.currentTime > 0; }",
        timeout=15000,
    )
    screenshot(page, "clip-playing")
    assert page.outside == [] and page.js_errors == []


def test_the_decisions_page_lists_event_clips_of_every_edge_and_plays_one(stack, browser):
    """edge-01's demo event makes a clip but is no detection of a focus class, so it raises no focus
    decision: this checks the Decisions page's "Event clips" panel (the latest clips of every edge,
    with edge, time and classes; the VMS filters them by time), that one plays, and "Clips around
    this" on a decision naming edge-01 shows only edge-01's clips near it."""
    nid = _edge(stack, "edge-01")["nid"]
    clip = wait_for(
        "a clip of edge-01 at the VMS",
        lambda: stack.get("vms", "/clips", nid=nid)["items"],
        180,
        stack,
        every=2,
    )[0]
    started = datetime.fromisoformat(clip["started_at"])
    around = stack.get(
        "vms",
        "/clips",
        nid=nid,
        since=(started - timedelta(seconds=1)).isoformat(),
        until=(started + timedelta(seconds=1)).isoformat(),
    )["items"]
    assert clip["id"] in [c["id"] for c in around]
    later = stack.get("vms", "/clips", since=(started + timedelta(hours=1)).isoformat())["items"]
    assert later == []

    page = new_page(browser, stack)
    sign_in(page, stack, "/decisions")
    row = page.locator(f"#event-clips tr[data-clip='{clip['id']}']")
    row.wait_for(timeout=10000)
    text = row.inner_text()
    assert nid in text and "demo" in text
    row.get_by_role("button", name="Play").click()
    page.wait_for_function(
        "() => { const v = document.getElementById('clip-player');"
        " return !v.error && v.readyState >= 2 && v.duration > 0 && v.currentTime > 0; }",
        timeout=15000,
    )
    screenshot(page, "decisions-clip-playing")

    # A decision naming edge-01 (any policy; the demo raises no focus): "Clips around this" lists
    # edge-01's clips from 5 minutes before to 5 minutes after it.
    def decision_with_clips() -> tuple[dict, dict] | None:
        for d in stack.get("optimizer", "/decisions", edge="edge-01", limit=20)["items"]:
            at = datetime.fromisoformat(d["at"])
            window = stack.get(
                "vms",
                "/clips",
                nid=nid,
                since=(at - timedelta(minutes=5)).isoformat(),
                until=(at + timedelta(minutes=5)).isoformat(),
                limit=20,
            )["items"]
            if (d.get("inputs") or {}).get("source_nid", d.get("nid")) == nid and window:
                return d, window[0]
        return None

    decision, near = wait_for(
        "a decision on edge-01 with clips near it", decision_with_clips, 180, stack, every=3
    )
    page.locator("#f-edge").fill("edge-01")
    page.get_by_role("button", name="Filter").click()
    item = page.locator(f"#decision-log li[data-decision='{decision['id']}']")
    item.get_by_role("button", name="Clips around this").click()
    page.locator("#clips-scope").filter(has_text="around the decision").wait_for(timeout=5000)
    page.locator(f"#event-clips tr[data-clip='{near['id']}']").wait_for(timeout=10000)
    nids = page.locator("#event-clips tr[data-nid]").evaluate_all(
        "rows => rows.map(r => r.dataset.nid)"
    )
    assert nids and set(nids) == {nid}
    page.get_by_role("button", name="Show all edges").click()
    page.locator("#clips-scope").filter(has_text="All edges").wait_for(timeout=5000)
    assert page.outside == [] and page.js_errors == []
