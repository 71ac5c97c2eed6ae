"""The observations on their way to the tables: one class per table, its fields the table's
columns in the table's order. This is the one place that order is written: the writer's column
lists and Postgres types (``storage.writer``) and the tables (``models``) are derived from it.

A record is built once per observation on the hot ingest path, so it is a slots dataclass (as
cheap to build as the positional tuple it replaces); the writer takes each row out with an
``operator.attrgetter`` over its columns (C code, no per-record Python call)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, ClassVar

# A field that travels with the record but is no column (marked with ``_NOT_STORED``).
_NOT_STORED = {"stored": False}

# The Postgres type of a column, from its annotation (its base type; `` | None`` is nullable).
_PG_TYPES = {
    "str": "text",
    "datetime": "timestamptz",
    "float": "float8",
    "int": "int4",
    "bool": "bool",
}


@dataclass(slots=True)
class UsageRecord:
    """A node's resource usage (``vms.usage``)."""

    kind: ClassVar[str] = "usage"
    nid: str
    ts: datetime
    received_at: datetime
    cpu: float
    memory: float
    func: str | None
    username: str | None
    code: str | None
    message: str | None
    authenticated: bool
    known: bool


@dataclass(slots=True)
class EnvironmentRecord:
    """An environment analysis result (``vms.environment``)."""

    kind: ClassVar[str] = "environment"
    nid: str
    ts: datetime
    received_at: datetime
    result: str
    condition: str | None  # None when the code is not in the mapping
    authenticated: bool
    known: bool


@dataclass(slots=True)
class DetectionsRecord:
    """A YOLO worker's per-second summary (``vms.detections``; its ``id`` is the table's)."""

    kind: ClassVar[str] = "detections"
    nid: str
    ts: datetime
    received_at: datetime
    model: str
    model_version: str
    fps: float
    frames: int
    inference_mean_ms: float | None
    inference_p50_ms: float | None
    inference_max_ms: float | None
    conf_threshold: float
    counts: dict[str, int]
    detections: list[dict[str, Any]]
    detected: int
    below_threshold: int
    frames_sent_up: int
    min_confidence: float | None
    authenticated: bool
    known: bool
    analysed_by: str | None
    # What the node state and the events read (not stored as such).
    summary: dict[str, Any] = field(metadata=_NOT_STORED)


Record = UsageRecord | EnvironmentRecord | DetectionsRecord
RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls for cls in (UsageRecord, EnvironmentRecord, DetectionsRecord)
}


def columns(record: type[Record]) -> tuple[str, ...]:
    """The table's columns, in order."""
    return tuple(f.name for f in fields(record) if f.metadata.get("stored", True))


def pg_types(record: type[Record]) -> tuple[str, ...]:
    """The Postgres type of each column, in order (JSON for dicts and lists)."""
    types = []
    for f in fields(record):
        if not f.metadata.get("stored", True):
            continue
        base = str(f.type).split("|")[0].strip()
        types.append("jsonb" if base.startswith(("dict", "list")) else _PG_TYPES[base])
    return tuple(types)


# A record's kind (its class's), as a function.
KIND_OF = attrgetter("kind")
# Per kind: a record's row, as a tuple in column order.
ROW_OF: dict[str, Any] = {kind: attrgetter(*columns(cls)) for kind, cls in RECORD_TYPES.items()}
