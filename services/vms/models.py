"""The VMS's tables (schema ``vms``): raw observations partitioned by day, and the current state per
node.

The three observation tables are range-partitioned on ``ts`` with one partition per UTC day
(``vms.usage_p20261122``...), created ahead by a scheduled job and on demand by the writer;
retention drops whole partitions. They have no primary key on purpose: a partitioned table's
key must include the partition column, and nothing refers to a single row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    Sequence,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.vms.records import DetectionsRecord, EnvironmentRecord, Record, UsageRecord, columns
from shared.db import make_base

Base = make_base("vms")
metadata = Base.metadata

PARTITIONED_TABLES = ("usage", "environment", "detections")


def _ts(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _in_record_order(record: type[Record], *given: Column) -> list[Column]:
    """An observation table's columns in its record's order (``records``, where that order is
    written once); columns the record does not carry (a generated id) come first."""
    order = columns(record)
    by_name = {c.name: c for c in given}
    if set(order) - set(by_name):
        raise ValueError(f"{record.__name__}: no column for {sorted(set(order) - set(by_name))}")
    return [c for c in given if c.name not in order] + [by_name[name] for name in order]


usage = Table(
    "usage",
    metadata,
    *_in_record_order(
        UsageRecord,
        Column("nid", String(32), nullable=False),
        _ts("ts"),
        _ts("received_at"),
        Column("cpu", Float, nullable=False),
        Column("memory", Float, nullable=False),
        Column("func", String(32)),  # NULL: the field's first monitoring program sends none
        Column("username", String(100)),
        Column("code", String(16)),
        Column("message", Text),
        Column("authenticated", Boolean, nullable=False),
        Column("known", Boolean, nullable=False),
    ),
    Index("ix_vms_usage_nid_ts", "nid", text("ts DESC")),
    postgresql_partition_by="RANGE (ts)",
)

environment = Table(
    "environment",
    metadata,
    *_in_record_order(
        EnvironmentRecord,
        Column("nid", String(32), nullable=False),
        _ts("ts"),
        _ts("received_at"),
        Column("result", String(16), nullable=False),
        Column("condition", String(32)),  # NULL when the code is not in the mapping
        Column("authenticated", Boolean, nullable=False),
        Column("known", Boolean, nullable=False),
    ),
    Index("ix_vms_environment_nid_ts", "nid", text("ts DESC")),
    postgresql_partition_by="RANGE (ts)",
)

detection_id_seq = Sequence("detections_id_seq", metadata=metadata)

detections = Table(
    "detections",
    metadata,
    *_in_record_order(
        DetectionsRecord,
        # A stable tie-breaker for pagination (many summaries share a second).
        Column(
            "id",
            BigInteger,
            detection_id_seq,
            server_default=detection_id_seq.next_value(),
            nullable=False,
        ),
        Column("nid", String(32), nullable=False),
        _ts("ts"),
        _ts("received_at"),
        Column("model", String(100), nullable=False),
        Column("model_version", String(40), nullable=False),
        Column("fps", Float, nullable=False),
        Column("frames", Integer, nullable=False),
        Column("inference_mean_ms", Float),
        Column("inference_p50_ms", Float),
        Column("inference_max_ms", Float),
        Column("conf_threshold", Float, nullable=False),
        Column("counts", JSONB, nullable=False),
        Column("detections", JSONB, nullable=False),
        Column("detected", Integer, nullable=False),
        Column("below_threshold", Integer, nullable=False),
        Column("frames_sent_up", Integer, nullable=False),
        Column("min_confidence", Float),
        Column("authenticated", Boolean, nullable=False),
        Column("known", Boolean, nullable=False),
        # The helper edge's nid when another edge analysed this node's camera (overload hand-off).
        Column("analysed_by", String(32)),
    ),
    Index("ix_vms_detections_nid_ts", "nid", text("ts DESC")),
    Index("ix_vms_detections_ts", text("ts DESC")),
    Index("ix_vms_detections_counts", "counts", postgresql_using="gin"),
    postgresql_partition_by="RANGE (ts)",
)

node_state = Table(
    "node_state",
    metadata,
    Column("nid", String(32), primary_key=True),
    Column("known", Boolean, nullable=False, server_default=text("true")),
    Column("authenticated", Boolean, nullable=False, server_default=text("false")),
    # Environment: the condition now, since when, and for how many consecutive samples.
    Column("condition", String(32)),
    Column("condition_code", String(16)),
    Column("previous_condition", String(32)),
    Column("streak", Integer, nullable=False, server_default=text("0")),
    _ts("condition_since", True),
    _ts("condition_changed_at", True),  # when the VMS saw the condition change (transaction time)
    _ts("environment_at", True),
    # Usage: the last sample and exponentially weighted averages.
    _ts("usage_at", True),
    Column("cpu", Float),
    Column("memory", Float),
    Column("func", String(32)),
    Column("cpu_avg", Float),
    Column("memory_avg", Float),
    # Detections: the last per-second summary and the recent share of low-confidence results.
    _ts("detections_at", True),
    Column("detections", JSONB),
    Column("low_confidence_share", Float),
    _ts("last_seen", True),
    _ts("updated_at", True),
    # Internal: what the last write brought for this node beyond the columns above (EWMA weights,
    # whether its samples all had one condition); read by the set-based upsert, never served.
    Column("batch_aux", JSONB),
)


# Frames the edges send up for precise re-analysis (low confidence, or an overloaded edge's work).
# Stored and queued here; the precise analysis itself is a later step that reads the queue.
analysis_requests = Table(
    "analysis_requests",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("nid", String(32), nullable=False),
    _ts("received_at"),
    _ts("ts", nullable=True),
    Column("reason", String(64), nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("image", LargeBinary, nullable=False),
    Column("image_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("result", JSONB, nullable=True),
    Column("authenticated", Boolean, nullable=False),
    Index("ix_analysis_requests_nid_received", "nid", "received_at"),
    Index("ix_analysis_requests_status", "status", "id"),
)
