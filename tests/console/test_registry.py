"""Managing the platform in a real browser against ``edgectl up``: an edge registered with its
position picked on the map, edited and removed; what keeps policies from acting for it flagged;
clusters and masters with their state; the condition map and a policy setting changed (and
logged as changed from the console)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.console.conftest import new_page, screenshot, sign_in, wait_for

pytestmark = pytest.mark.timeout(300)


def _click_map(page, fx: float, fy: float) -> tuple[float, float]:
    """Click the picking map at a fraction of its size; the latitude and longitude it set."""
    box = page.locator("#pick-map svg").bounding_box()
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    lat, lon = page.locator("#edge-latitude"), page.locator("#edge-longitude")
    wait_for("a position from the map", lambda: lat.input_value() and lon.input_value(), 10)
    return float(lat.input_value()), float(lon.input_value())


def test_an_edge_registered_with_its_position_on_the_map_edited_and_removed(stack, browser):
    page = new_page(browser, stack)
    name = f"map-edge-{uuid.uuid4().hex[:6]}"
    sign_in(page, stack, "/registry")
    page.locator("#edges-table tr[data-edge='edge-01']").wait_for()
    # The demo's cluster and its master, with their state.
    assert page.locator("#clusters-table tbody tr").count() >= 1
    assert page.locator("#masters-table tbody tr").count() >= 1

    form = page.locator("#edge-form")
    form.get_by_label("Name", exact=True).fill(name)
    lat, lon = _click_map(page, 0.3, 0.7)
    page.locator("#pick-map circle.picked").wait_for()
    form.get_by_label("CPU cores").fill("2")
    form.get_by_label("Kubernetes node").fill("node-7")
    form.get_by_role("button", name="Register").click()
    row = page.locator(f"#edges-table tr[data-edge='{name}']")
    row.wait_for()
    assert f"{lat:.5f}, {lon:.5f}" in row.locator(".position").inner_text()
    assert "Its token, shown only this once" in page.locator("#problems").inner_text()
    edge = stack.get("setup", f"/edges/{name}")
    assert edge["gps"] == {"latitude": lat, "longitude": lon}
    assert edge["capacity"]["cpu"] == 2 and edge["node_name"] == "node-7"
    assert "no analysis support" in row.locator(".flags").inner_text()
    screenshot(page, "registry")

    # On the fleet map, where it was put.
    page.goto("/fleet")
    page.locator(f"#map .edge-point[data-name='{name}']").wait_for()

    # Its page flags what keeps policies from acting for it (it runs no analysis AI).
    page.goto(f"/edges/{edge['id']}")
    page.locator("#explain [data-blocker='no_analysis_ai']").wait_for()
    assert page.locator("#explain [data-blocker='no_gps']").count() == 0

    # Edited: a new position picked on the map (from the edge page's Edit link).
    page.get_by_role("link", name="Edit").click()
    page.wait_for_url("**/registry?edit=*")
    page.locator("#edge-form-title", has_text=f"Edit {name}").wait_for()
    assert page.locator("#edge-name").input_value() == name
    lat2, lon2 = _click_map(page, 0.7, 0.3)
    assert (lat2, lon2) != (lat, lon)
    page.locator("#edge-form").get_by_role("button", name="Save").click()
    # The console's answer first (saved, or a refusal shown as it came: named if it fails).
    message = page.locator("#problems [data-key='edge']")
    message.wait_for(timeout=30_000)
    assert f"{name} saved." in message.inner_text(), message.inner_text()
    edge = stack.get("setup", f"/edges/{name}")
    assert edge["gps"] == {"latitude": lat2, "longitude": lon2}, (edge["gps"], lat2, lon2)

    # Removed, confirmed.
    row.get_by_role("button", name="Remove").click()
    page.get_by_role("button", name="Confirm").click()
    row.wait_for(state="detached")
    r = httpx.get(f"{stack.urls['setup']}/edges/{name}", headers=stack.headers, timeout=10)
    assert r.status_code == 404
    assert not page.js_errors and not page.outside


def test_conditions_and_a_policy_setting_changed_in_the_console(stack, browser):
    page = new_page(browser, stack)
    sign_in(page, stack, "/settings")
    page.locator("form.policy[data-policy='focus']").wait_for()
    before = stack.get("setup", "/conditions")
    try:
        _conditions_and_a_policy(page, stack)
    finally:  # the shared stack's map as it was
        httpx.put(
            f"{stack.urls['setup']}/conditions", json=before, headers=stack.headers, timeout=10
        ).raise_for_status()


def _conditions_and_a_policy(page, stack) -> None:
    page.get_by_label("Code").fill("9")
    page.get_by_label("Condition", exact=True).fill("HAZY")
    page.get_by_label("AI class").fill("09")
    page.get_by_role("button", name="Set", exact=True).click()
    page.locator("#conditions-table tr[data-code='9']").wait_for()
    mapping = stack.get("setup", "/conditions")
    assert mapping["codes"]["9"] == "HAZY" and mapping["ai_classes"]["HAZY"] == "09"
    # A refusal from setup shows as it comes.
    page.get_by_label("Code").fill("10")
    page.get_by_label("Condition", exact=True).fill("hazy")
    page.get_by_role("button", name="Set", exact=True).click()
    page.locator("#problems .error", has_text="upper-case word").wait_for()
    page.locator("#conditions-table tr[data-code='9']").get_by_role("button").click()
    page.get_by_role("button", name="Confirm").click()
    page.locator("#conditions-table tr[data-code='9']").wait_for(state="detached")

    focus = page.locator("form.policy[data-policy='focus']")
    focus.locator("[data-key='ttl_s']").fill("120")
    focus.get_by_role("button", name="Save focus").click()
    page.locator("#policy-changes li", has_text="by operator (console)").first.wait_for()
    policy = next(p for p in stack.get("optimizer", "/policies") if p["name"] == "focus")
    assert policy["effective"]["ttl_s"] == 120
    focus = page.locator("form.policy[data-policy='focus']")
    focus.get_by_role("button", name="Back to defaults").click()
    page.get_by_role("button", name="Confirm").click()
    page.locator("#problems", has_text="focus: back to the defaults").wait_for()
    wait_for(
        "focus back to its defaults",
        lambda: (
            not next(p for p in stack.get("optimizer", "/policies") if p["name"] == "focus")[
                "overrides"
            ]
        ),
        10,
    )
    screenshot(page, "settings")
    assert not page.js_errors and not page.outside
