"""``edgectl conditions show/set`` (setup's result code -> condition -> ai_class map) and
``edgectl policies show/set/reset/changes`` (the optimizer's policy settings that change at run
time: thresholds, windows, TTLs, focus classes; checked here with the policy's own change body
before they are sent, validated again by the optimizer, persisted, and logged as who changed
what)."""

from __future__ import annotations

import json
from typing import Any

import typer
from pydantic import ValidationError

from edgectl.ops.client import JsonOption, call, console, fail, print_json, read, table
from shared.contracts.decisions import Policy
from shared.contracts.policies import POLICY_PATCHES, PolicyPatch

conditions_app = typer.Typer(
    help="What the environment AI's result codes mean, and which variant runs for each.",
    no_args_is_help=True,
)
policies_app = typer.Typer(
    help="The optimizer's policy settings (changed at run time, persisted).", no_args_is_help=True
)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            fail(f"{value!r}: give {what}")
        out[key.strip()] = val.strip()
    return out


# ---- conditions ------------------------------------------------------------------------------


def _print_conditions(mapping: dict[str, Any]) -> None:
    classes = mapping["ai_classes"]
    rows = [[code, cond, classes.get(cond)] for code, cond in sorted(mapping["codes"].items())]
    unmapped = sorted(set(classes) - set(mapping["codes"].values()))
    rows += [["-", cond, classes[cond]] for cond in unmapped]
    console().print(table(None, ["CODE", "CONDITION", "AI CLASS"], rows))


@conditions_app.command("show")
def conditions_show(as_json: bool = JsonOption) -> None:
    """The map: result code -> condition -> ai_class of the variant made for it."""
    mapping = read("setup", "/conditions")
    if as_json:
        print_json(mapping)
        return
    _print_conditions(mapping)


@conditions_app.command("set")
def conditions_set(
    codes: list[str] = typer.Argument(
        None, help="CODE=CONDITION pairs, e.g. 3=FOGGY (added or changed)"
    ),
    ai_class: list[str] = typer.Option(
        None, "--ai-class", help="CONDITION=NN: the variant's ai_class for a condition"
    ),
    remove: list[str] = typer.Option(None, "--remove", help="a result code to forget"),
    as_json: bool = JsonOption,
) -> None:
    """Change the map (merged into the current one; setup validates it whole)."""
    if not codes and not ai_class and not remove:
        fail("nothing to change: give CODE=CONDITION, --ai-class CONDITION=NN or --remove CODE")
    mapping = read("setup", "/conditions")
    new_codes = {**mapping["codes"], **_pairs(codes or [], "CODE=CONDITION")}
    for code in remove or []:
        if code not in new_codes:
            fail(f"no result code {code!r} in the map")
        new_codes.pop(code)
    new_classes = {**mapping["ai_classes"], **_pairs(ai_class or [], "CONDITION=NN")}
    saved = call(
        "PUT", "setup", "/conditions", body={"codes": new_codes, "ai_classes": new_classes}
    )
    if as_json:
        print_json(saved)
        return
    _print_conditions(saved)


# ---- policies --------------------------------------------------------------------------------


def _value(text: str) -> Any:
    """A JSON value (5, 0.3, false, ["person"]) or, when it is not one, the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _print_policy(policy: dict[str, Any]) -> None:
    rows = [
        [key, value, policy["defaults"].get(key), "yes" if key in policy["overrides"] else ""]
        for key, value in policy["effective"].items()
    ]
    title = f"{policy['name']} ({'enabled' if policy['enabled'] else 'disabled'})"
    console().print(table(title, ["SETTING", "VALUE", "DEFAULT", "CHANGED"], rows))


def _patch(name: str, changes: dict[str, Any]) -> PolicyPatch:
    """The policy's own change body; an unknown policy or setting, or a value of the wrong type,
    ends the command naming it (nothing is sent)."""
    try:
        policy = Policy(name)
    except ValueError:
        fail(f"no policy {name!r}; policies: {', '.join(Policy)}")
    try:
        return POLICY_PATCHES[policy].model_validate(changes)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        fail(f"{field}: {error['msg']}")


@policies_app.command("show")
def policies_show(
    name: str = typer.Argument(None, help="one policy (default: every policy)"),
    as_json: bool = JsonOption,
) -> None:
    """Every policy's settings: the value in effect, the default, whether it was changed."""
    policies = read("optimizer", "/policies")
    if name is not None:
        policies = [p for p in policies if p["name"] == name]
        if not policies:
            fail(f"no policy {name!r}")
    if as_json:
        print_json(policies if name is None else policies[0])
        return
    for policy in policies:
        _print_policy(policy)


@policies_app.command("set")
def policies_set(
    name: str = typer.Argument(..., help="the policy: environment, overload, focus, ..."),
    settings: list[str] = typer.Argument(
        ...,
        help="SETTING=VALUE pairs; VALUE is JSON when it parses: ttl_s=120 enabled=false "
        'classes=\'["person","car"]\'',
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change settings of one policy at run time (validated by the optimizer, persisted, logged
    as changed by the operator from edgectl)."""
    changes = {key: _value(text) for key, text in _pairs(settings, "SETTING=VALUE").items()}
    patch = _patch(name, changes)
    policy = call("PATCH", "optimizer", f"/policies/{name}", body=patch.changes())
    if as_json:
        print_json(policy)
        return
    _print_policy(policy)


@policies_app.command("reset")
def policies_reset(name: str = typer.Argument(..., help="the policy")) -> None:
    """Back to the settings' defaults (OPTIMIZER_<POLICY>__<SETTING>)."""
    policy = call("DELETE", "optimizer", f"/policies/{name}/overrides")
    _print_policy(policy)


@policies_app.command("changes")
def policies_changes(
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="newest first"),
    as_json: bool = JsonOption,
) -> None:
    """Who changed which policy's settings, and when."""
    changes = read("optimizer", "/policies/changes", {"limit": limit})
    if as_json:
        print_json(changes)
        return
    rows = [
        [c["at"], c["policy"], c["changed_by"], "reset" if c["reset"] else c["changes"]]
        for c in changes
    ]
    console().print(table(None, ["AT", "POLICY", "BY", "CHANGES"], rows))
