"""What edges post: the field's payloads (numbers may arrive as strings) and our own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import SchemaValidator

# Field devices send "4" or 4, "0000" or 0: both are the same code (coerce_numbers_to_str below).
# No NUL: Postgres refuses it in text and JSON (the shared request layer refuses it in JSON and
# form bodies already; this covers every other way in, natively). An unpaired surrogate is
# refused by pydantic itself. A validator, not a pattern: a field's own pattern (date, time)
# would replace a pattern here, and the last one alone would be checked.


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


# Each string carries its length or pattern inside its type, before the NUL rule: a length given
# in Field() on top of a validated type is checked by a Python function per field and per record
# (pydantic cannot move it into the native string check under a function validator).
_NoNul = AfterValidator(_no_nul)
NodeIdText = Annotated[str, StringConstraints(min_length=1, max_length=32), _NoNul]
Text16 = Annotated[str, StringConstraints(max_length=16), _NoNul]
Text32 = Annotated[str, StringConstraints(max_length=32), _NoNul]
Text100 = Annotated[str, StringConstraints(max_length=100), _NoNul]
Text500 = Annotated[str, StringConstraints(max_length=500), _NoNul]
Name16 = Annotated[str, StringConstraints(min_length=1, max_length=16), _NoNul]
Name40 = Annotated[str, StringConstraints(min_length=1, max_length=40), _NoNul]
Name64 = Annotated[str, StringConstraints(min_length=1, max_length=64), _NoNul]
Name100 = Annotated[str, StringConstraints(min_length=1, max_length=100), _NoNul]
Digits8 = Annotated[str, StringConstraints(pattern=r"^[0-9]{8}$"), _NoNul]
Digits6 = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$"), _NoNul]
Number = Annotated[float, Field(allow_inf_nan=False)]
# The columns these go to are 32-bit integers.
Int32 = Annotated[int, Field(ge=0, le=2**31 - 1)]
ClassName = Name64  # a class name (a key of counts)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Payload(BaseModel):
    # Unknown keys are ignored: newer edge programs may send more than we store.
    model_config = ConfigDict(
        extra="ignore", str_strip_whitespace=True, populate_by_name=True, coerce_numbers_to_str=True
    )


class UsageIn(_Payload):
    """POST /usage, every second from the monitoring program (the field's payload)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "0000",
                    "message": "success",
                    "username": "edge-master-01-1129",
                    "cpu": 23.5,
                    "memory": 41.2,
                    "func": "SUNNY",
                    "nid": "0x31",
                }
            ]
        }
    )

    code: Text16 | None = Field(None, examples=["0000"])
    message: Text500 | None = Field(None, examples=["success"])
    username: Text100 | None = Field(None, examples=["edge-master-01-1129"])
    cpu: Number = Field(
        ge=0, le=1000, description="CPU use in percent (may exceed 100 on several cores)"
    )
    memory: Number = Field(ge=0, le=100, description="memory use in percent")
    func: Text32 | None = Field(
        None,
        description="the running variant, e.g. SUNNY (the field's first program sends none)",
    )
    # Extensions: the node id (devices that know it) and the sample's time (agents that buffer).
    nid: NodeIdText | None = Field(None)
    ts: datetime | None = None

    @field_validator("ts")
    @classmethod
    def _ts_aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)


class EnvironmentIn(_Payload):
    """POST /save_edgeData, every second from the environment (weather) AI."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"nid": "0x31", "date": "20261128", "time": "142503", "result": "2"}]
        }
    )

    nid: NodeIdText = Field(examples=["0x01"])
    date: Digits8 = Field(description="yyyymmdd", examples=["20240808"])
    time: Digits6 = Field(description="hhmmss", examples=["142503"])
    result: Name16 = Field(description="the class code the AI computed", examples=["2"])

    @field_validator("time", mode="before")
    @classmethod
    def _pad_time(cls, value: Any) -> Any:
        # 092503 sent as a JSON number arrives as 92503.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000:
            return f"{value:06d}"
        return value


class InferenceMs(_Payload):
    mean: Number | None = Field(None, ge=0)
    p50: Number | None = Field(None, ge=0)
    max: Number | None = Field(None, ge=0)


class Detection(_Payload):
    class_: Name64 = Field(alias="class")
    class_id: Int32 | None = None
    confidence: Number = Field(ge=0, le=1)
    box: list[Number] = Field(min_length=4, max_length=4, description="[x1, y1, x2, y2]")


class DetectionsIn(_Payload):
    """POST /detections, the YOLO worker's per-second summary."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "nid": "0x31",
                    "ts": "2026-11-28T03:00:00.123Z",
                    "model": "yolov8n",
                    "model_version": "01",
                    "fps": 10,
                    "frames": 10,
                    "conf_threshold": 0.25,
                    "counts": {"person": 2},
                    "detections": [
                        {
                            "class": "person",
                            "class_id": 0,
                            "confidence": 0.91,
                            "box": [10, 20, 110, 220],
                        }
                    ],
                }
            ]
        }
    )

    nid: NodeIdText | None = Field(None, examples=["0x01"])
    ts: datetime = Field(examples=["2026-11-22T03:00:00.123Z"])
    model: Name100 = Field(examples=["yolov8n"])
    model_version: Name40 = Field(examples=["01"])
    fps: Number = Field(ge=0, le=10_000)
    frames: Int32
    inference_ms: InferenceMs | None = None
    conf_threshold: Number = Field(ge=0, le=1)
    counts: dict[ClassName, Annotated[int, Field(ge=0, le=2**63 - 1)]] = Field(default_factory=dict)
    detections: list[Detection] = Field(default_factory=list)
    below_threshold: Int32 = 0
    frames_sent_up: Int32 = 0
    # The helper edge that analysed this node's camera during an overload hand-off.
    analysed_by: NodeIdText | None = Field(None, examples=["0x02"])
    # What keeps failing on the edge (the worker reports after YOLO_FAILURE_REPORT_S): its camera
    # gives no frame; the analysis service refuses its uploads (429, 5xx) or cannot be reached.
    # Kept in the node's state for the optimizer's fallbacks.
    source_unavailable: str | None = Field(
        None, max_length=300, examples=["snapshot http://***:***@cam/frame.jpg: URLError"]
    )
    analysis_unavailable: str | None = Field(None, max_length=300, examples=["HTTP 429: busy"])

    @field_validator("ts")
    @classmethod
    def _ts_aware(cls, value: datetime) -> datetime:
        return _aware(value)


Kind = Literal["usage", "environment", "detections"]
PAYLOADS: dict[str, type[_Payload]] = {
    "usage": UsageIn,
    "environment": EnvironmentIn,
    "detections": DetectionsIn,
}


class BatchRecordIn(BaseModel):
    kind: Kind
    data: dict[str, Any]


class BatchIn(BaseModel):
    """POST /batch: many records of any kind, for agents that buffered while offline."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "records": [
                        {"kind": "usage", "data": {"nid": "0x31", "cpu": 20.1, "memory": 40.0}}
                    ]
                }
            ]
        }
    )

    records: list[BatchRecordIn]


class BatchResult(BaseModel):
    index: int
    status: Literal["stored", "rejected"]
    field: str | None = None
    problem: str | None = None


class BatchOut(BaseModel):
    results: list[BatchResult]
    stored: int
    rejected: int


class StoredOut(BaseModel):
    code: str = "0000"
    message: str = "success"
    status: Literal["stored"] = "stored"
    nid: str
    known: bool


def _without_nul_checks(schema: Any) -> Any:
    """``schema`` (a pydantic core schema) with every ``_no_nul`` validator taken out: each
    string keeps its own checks (length, pattern, stripping), every other validator stays."""
    if isinstance(schema, list):
        return [_without_nul_checks(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "function-after" and schema["function"].get("function") is _no_nul:
        return _without_nul_checks(schema["schema"])
    return {key: _without_nul_checks(value) for key, value in schema.items()}


def _nul_free_validator(model: type[_Payload]) -> SchemaValidator:
    """``model``'s validator without the NUL rule. Built from its schema anew (not the model's
    own validator, which pydantic-core would otherwise reuse as it is); a pydantic-core without
    that switch gets the model's own validator: slower, the same answers."""
    schema = _without_nul_checks(model.__pydantic_core_schema__)
    try:
        return SchemaValidator(schema, _use_prebuilt=False)
    except TypeError:
        return model.__pydantic_validator__  # type: ignore[return-value]


# Each payload's validator without the NUL rule, for a body that holds no NUL at all (no
# ``\u0000`` escape, no raw NUL: ``free_of_nul``): the same answers, without a Python call per
# string field (four a usage record). Any other body is validated by the payloads themselves.
NUL_FREE_VALIDATORS: dict[str, SchemaValidator] = {
    kind: _nul_free_validator(model) for kind, model in PAYLOADS.items()
}


def free_of_nul(body: bytes) -> bool:
    r"""Whether no string parsed from the JSON ``body`` can hold a NUL: JSON writes one only as
    the escape ``\u0000`` (a raw control character is not JSON), and this body holds neither."""
    return b"\\u0000" not in body and b"\x00" not in body
