"""The Arrow answers of setup's snapshot and the VMS's node states hold, row for row, what the
JSON answers hold, on values a text stream could mangle: NULLs beside empty text, text with
commas, quotes, line breaks, backslashes and non-ASCII characters, text that reads like a null
(``NA``, ``NULL``), JSON columns, times and booleans (the services stream the rows as CSV and
parse them with pyarrow, issue 24)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import orjson

from shared.contracts import columnar
from tests.helpers.env import OPERATOR
from tests.optimizer.conftest import Stack

ARROW = {"Accept": columnar.ARROW_STREAM, **OPERATOR}

TRICKY = [
    'comma, "quoted"\nsecond line',
    "NA",
    "NULL",
    "\\N",
    "\\.",
    "é 中文 😀",
    " spaced ",
    "'single'",
]


def _fleet(stack: Stack) -> None:
    pkg = stack.package("monitoring", "01", "01")
    other = stack.package("weatherai", "01", "00")
    edges = [
        stack.edge(name, f"0x{i + 1:02x}", analysis=i % 2 == 0, lat=37.5 + i / 7)
        for i, name in enumerate(TRICKY)
    ]
    params: list[dict[str, Any]] = [
        {"text": 'a,b\n"c"\\d', "u": "é😀", "none": None, "nested": {"x": [1, 2.5, True]}},
        {},
        {"empty": ""},
    ]
    for i, edge in enumerate(edges):
        d = stack.deploy(edge, pkg, params=params[i % len(params)])
        if i % 2 == 0:
            stack.observe(d, "failed", restarts=i, reason=TRICKY[i])
        if i == 1:
            stack.deploy(edge, other)
    stack.usage("0x01", cpu=12.5, memory=40.0, samples=2)
    stack.usage("0x02", cpu=0.1, memory=1e-9)
    stack.detections("0x01", detected=3, below=1, frames=10, sent_up=4, counts={'car,"x"\n': 3})
    stack.conditions("0x03", "2", 2)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _json_value(field: str, value: Any, arrow_type: Any) -> Any:
    """A JSON row's value as the Arrow form carries it."""
    if str(arrow_type).startswith("timestamp"):
        return _time(value)
    return value


def _arrow_value(field: str, value: Any) -> Any:
    return orjson.loads(value) if field == "params" and value is not None else value


def test_the_arrow_snapshot_holds_the_json_rows(stack: Stack):
    _fleet(stack)
    whole = stack.setup.get("/fleet/snapshot", headers=OPERATOR)
    assert whole.status_code == 200, whole.text
    as_json = whole.json()
    r = stack.setup.get("/fleet/snapshot", headers=ARROW)
    assert r.status_code == 200 and r.headers["content-type"] == columnar.ARROW_STREAM
    tables, meta = columnar.decode(r.content)
    assert meta["conditions"] == as_json["conditions"]
    assert {e["name"] for e in as_json["edges"]} >= set(TRICKY)
    for name in ("edges", "ai_packages", "deployments"):
        table = tables[name]
        assert table.schema.remove_metadata() == columnar.SNAPSHOT_TABLES[name], name
        rows = table.to_pylist()
        assert len(rows) == len(as_json[name]) > 0, name
        for got, want in zip(rows, as_json[name], strict=True):
            for field in table.schema:
                assert _arrow_value(field.name, got[field.name]) == _json_value(
                    field.name, want.get(field.name), field.type
                ), (name, field.name, got[field.name], want.get(field.name))


def test_the_arrow_node_states_hold_the_json_items(stack: Stack):
    _fleet(stack)
    with httpx.Client(base_url=stack.vms_url, timeout=30) as vms:
        as_json = vms.get("/nodes/state", headers=OPERATOR).json()
        r = vms.get("/nodes/state", headers=ARROW)
    assert r.status_code == 200 and r.headers["content-type"] == columnar.ARROW_STREAM
    tables, meta = columnar.decode(r.content)
    assert meta["generated_at"] >= as_json["generated_at"]  # read a moment later
    table = tables["nodes"]
    assert table.schema.remove_metadata() == columnar.NODES
    rows = table.to_pylist()
    assert [row["nid"] for row in rows] == [item["nid"] for item in as_json["items"]]
    assert len(rows) == len(TRICKY)  # every registered edge, the silent ones too
    for got, item in zip(rows, as_json["items"], strict=True):
        usage, det = item["usage"] or {}, item["detections"] or {}
        want = {
            **{k: v for k, v in item.items() if k not in ("usage", "detections")},
            "usage_at": usage.get("at"),
            **{k: usage.get(k) for k in ("cpu", "memory", "func", "cpu_avg", "memory_avg")},
            "detections_at": det.get("at"),
            "low_confidence_share": det.get("low_confidence_share"),
            **{
                k: det.get(k)
                for k in (
                    "frames",
                    "frames_sent_up",
                    "analysed_by",
                    "source_unavailable",
                    "analysis_unavailable",
                )
            },
        }
        for field in table.schema:
            if field.name == "detections":
                summary = got["detections"]
                assert (orjson.loads(summary) if summary is not None else None) == (
                    {k: v for k, v in det.items() if k not in ("at", "low_confidence_share")}
                    if item["detections"] is not None
                    else None
                )
                continue
            assert got[field.name] == _json_value(field.name, want[field.name], field.type), (
                item["nid"],
                field.name,
            )
    first = next(row for row in rows if row["nid"] == "0x01")
    assert first["cpu"] is not None and first["frames"] == 10
