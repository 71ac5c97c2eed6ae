"""Ingest: validate a payload, decide which node it belongs to, hand it to the group commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from fastapi import Depends
from pydantic import ValidationError

from services.vms.ingest.committer import GroupCommitter
from services.vms.ingest.metrics import IngestMetrics
from services.vms.ingest.schemas import (
    NUL_FREE_VALIDATORS,
    PAYLOADS,
    DetectionsIn,
    EnvironmentIn,
    UsageIn,
)
from services.vms.nodes.directory import NodeDirectory
from services.vms.nodes.handoffs import HandoffCheck
from services.vms.records import DetectionsRecord, EnvironmentRecord, Record, UsageRecord
from services.vms.settings import VmsSettings
from shared.auth import Principal
from shared.deps import from_app_state
from shared.errors import Forbidden, Invalid, Unauthorized
from shared.legacy import describe_validation_errors


class Rejected(Invalid):
    """A record refused, with the reason counted in the metrics."""

    def __init__(self, message: str, *, field: str, reason: str, status: int = 422):
        super().__init__(message, field=field)
        self.reason = reason
        self.status_code = status


class _NeedsDirectory(Exception):
    """Building a record synchronously stopped where its node must be looked up (asking setup or
    the optimizer's hand-offs): ``IngestService.build`` awaits the look-up and builds again."""

    def __init__(self, payload_nid: str | None, username: str | None, analysed_by: str | None):
        super().__init__()
        self.payload_nid, self.username, self.analysed_by = payload_nid, username, analysed_by


# Each payload's validator, called directly: ``model_validate`` adds a Python call per record.
_VALIDATORS = {kind: model.__pydantic_validator__ for kind, model in PAYLOADS.items()}
# A node as decided for a record: (nid, known, authenticated).
Node = tuple[str, bool, bool]


def _prefixed(prefix: str, field: str | None) -> str:
    if not prefix:
        return field or "body"
    return f"{prefix}.{field}" if field and field != "body" else prefix


class IngestService:
    def __init__(
        self,
        settings: VmsSettings,
        directory: NodeDirectory,
        committer: GroupCommitter,
        metrics: IngestMetrics,
        handoffs: HandoffCheck | None = None,
    ):
        self.settings = settings
        self.directory = directory
        self.handoffs = handoffs
        self.committer = committer
        self.metrics = metrics
        self.zone = ZoneInfo(settings.field_timezone)  # the fleet default
        self._zones: dict[str, ZoneInfo] = {}
        self._future = timedelta(seconds=settings.max_future_s)
        self._oldest = timedelta(days=settings.retention_days)
        # The accepted span of record times around the last ``now`` seen (a batch shares one).
        self._span_now: datetime | None = None
        self._span: tuple[datetime, datetime] | None = None

    # -- parsing ---------------------------------------------------------------------------
    @staticmethod
    def parse_json(raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejected(
                f"body is not valid JSON: {exc}", field="body", reason="bad_json"
            ) from exc

    def validate(self, kind: str, data: Any, prefix: str = "", *, nul_free: bool = False):
        """The payload; ``nul_free``: the body held no NUL (``schemas.free_of_nul``), so the
        strings' NUL rule is not checked again."""
        if not isinstance(data, dict):
            raise Rejected(
                "must be a JSON object", field=_prefixed(prefix, "body"), reason="invalid"
            )
        try:
            return (NUL_FREE_VALIDATORS if nul_free else _VALIDATORS)[kind].validate_python(data)
        except ValidationError as exc:
            problems = describe_validation_errors(exc.errors())
            first = problems[0]
            # The answer names the first field itself ("cpu: ..."): the message does not repeat it.
            others = [f"{_prefixed(prefix, p['field'])}: {p['problem']}" for p in problems[1:]]
            text = "; ".join([first["problem"], *others])
            raise Rejected(text, field=_prefixed(prefix, first["field"]), reason="invalid") from exc

    # -- node identity -----------------------------------------------------------------------
    def resolve_now(
        self,
        principal: Principal,
        payload_nid: str | None,
        username: str | None,
        *,
        legacy: bool,
        prefix: str = "",
        analysed_by: str | None = None,
    ) -> tuple[str, bool, bool] | None:
        """(nid, known, authenticated) of the record, a 4xx, or None when the answer needs a
        look-up that waits (``resolve_node``): the common cases (an edge's own token, a node the
        directory knows) never wait."""
        if principal.kind == "anonymous" and not (legacy and self.settings.allow_anonymous):
            raise Unauthorized()
        if principal.kind == "edge":
            assert principal.nid is not None
            if payload_nid is not None and payload_nid != principal.nid:
                if analysed_by is not None:
                    return None  # a helper's summary: the hand-off is asked (_helped_node)
                self.metrics.rejects.labels("nid_mismatch").inc()
                raise Forbidden(
                    f"the token is node {principal.nid}'s, the payload says {payload_nid}",
                    field=_prefixed(prefix, "nid"),
                )
            # Setup signed this token for this node, and it is neither expired nor revoked: that
            # proves the node, even before the node list has caught up with a new registration.
            self.directory.learn(principal.nid)
            return principal.nid, True, True
        authenticated = principal.kind != "anonymous"
        if payload_nid is not None:
            known = self.directory.known_now(payload_nid)
            if known is None:
                return None
            return self._unknown_policy(payload_nid, known, "nid", prefix, authenticated)
        if username is not None:
            nid = self.directory.nid_for_username_now(username)
            return (nid, True, authenticated) if nid is not None else None
        raise Rejected(
            "the node is unknown: send nid (or username) or use the edge's token",
            field=_prefixed(prefix, "nid"),
            reason="no_node",
        )

    async def resolve_node(
        self,
        principal: Principal,
        payload_nid: str | None,
        username: str | None,
        *,
        legacy: bool,
        prefix: str = "",
        analysed_by: str | None = None,
    ) -> tuple[str, bool, bool]:
        """(nid, known, authenticated) of the record, or a 4xx."""
        found = self.resolve_now(
            principal, payload_nid, username, legacy=legacy, prefix=prefix, analysed_by=analysed_by
        )
        if found is not None:
            return found
        if principal.kind == "edge":
            assert principal.nid is not None and payload_nid is not None
            assert analysed_by is not None
            return await self._helped_node(principal.nid, payload_nid, analysed_by, prefix)
        authenticated = principal.kind != "anonymous"
        if payload_nid is not None:
            known = await self.directory.is_known(payload_nid)
            return self._unknown_policy(payload_nid, known, "nid", prefix, authenticated)
        assert username is not None
        nid = await self.directory.nid_for_username(username)
        if nid is not None:
            return nid, True, authenticated
        # A device login name (edge-master-01-1129) setup does not know: stored under the name as
        # reported, flagged unknown, for an operator to map; never refused.
        return username[:32], False, authenticated

    async def _helped_node(
        self, token_nid: str, payload_nid: str, analysed_by: str, prefix: str
    ) -> tuple[str, bool, bool]:
        """A helper edge's summary for the node it analyses: its own token, ``analysed_by`` its
        own nid, and the optimizer's current hand-off naming it; anything else is refused."""
        if analysed_by != token_nid:
            self.metrics.rejects.labels("nid_mismatch").inc()
            raise Forbidden(
                f"the token is node {token_nid}'s, analysed_by says {analysed_by}",
                field=_prefixed(prefix, "analysed_by"),
            )
        if self.handoffs is None or not await self.handoffs.allows(token_nid, payload_nid):
            self.metrics.rejects.labels("no_handoff").inc()
            raise Forbidden(
                f"node {token_nid} does not analyse {payload_nid} now (no current hand-off)",
                field=_prefixed(prefix, "nid"),
            )
        return payload_nid, True, True

    def _unknown_policy(
        self, nid: str, known: bool, field: str, prefix: str, authenticated: bool
    ) -> tuple[str, bool, bool]:
        if not known and self.settings.unknown_nodes == "reject":
            raise Rejected(
                f"unknown node {nid!r}: not registered in setup",
                field=_prefixed(prefix, field),
                reason="unknown_node",
            )
        return nid, known, authenticated

    # -- time ----------------------------------------------------------------------------------
    def _check_ts(
        self, ts: datetime, now: datetime, field: str, prefix: str, read_as: str = ""
    ) -> None:
        if now is not self._span_now or self._span is None:
            self._span_now, self._span = now, (now - self._oldest, now + self._future)
        if self._span[0] <= ts <= self._span[1]:
            return
        stamp = f"{read_as}: {ts.isoformat()}" if read_as else ts.isoformat()
        if ts > now + self._future:
            raise Rejected(
                f"{stamp} is in the future", field=_prefixed(prefix, field), reason="bad_time"
            )
        if ts < now - self._oldest:
            raise Rejected(
                f"{stamp} is older than the retention ({self.settings.retention_days} days)",
                field=_prefixed(prefix, field),
                reason="bad_time",
            )

    def zone_for(self, nid: str) -> tuple[ZoneInfo, str]:
        """The zone the node's date/time strings are read in, and where it came from."""
        name = self.directory.time_zone_for(nid)
        if name:
            zone = self._zones.get(name)
            if zone is None:
                try:
                    zone = self._zones[name] = ZoneInfo(name)
                except (ZoneInfoNotFoundError, ValueError):
                    zone = None
            if zone is not None:
                return zone, f"{name}, the edge's time zone"
        return self.zone, f"{self.settings.field_timezone}, the fleet default VMS_FIELD_TIMEZONE"

    def _field_ts(self, payload: EnvironmentIn, prefix: str, zone: ZoneInfo) -> datetime:
        d, t = payload.date, payload.time
        try:
            day = datetime.strptime(d, "%Y%m%d")
        except ValueError:
            raise Rejected(
                f"{d!r} is not a date (yyyymmdd)",
                field=_prefixed(prefix, "date"),
                reason="bad_time",
            ) from None
        hh, mm, ss = int(t[0:2]), int(t[2:4]), int(t[4:6])
        if hh > 23 or mm > 59 or ss > 59:
            raise Rejected(
                f"{t!r} is not a time (hhmmss)", field=_prefixed(prefix, "time"), reason="bad_time"
            )
        return day.replace(hour=hh, minute=mm, second=ss, tzinfo=zone).astimezone(UTC)

    # -- records -------------------------------------------------------------------------------
    async def build(
        self,
        principal: Principal,
        kind: str,
        data: Any,
        *,
        legacy: bool,
        prefix: str = "",
        now: datetime | None = None,
        nul_free: bool = False,
    ) -> Record:
        """The record, built without waiting unless its node must be looked up."""
        try:
            return self.build_now(
                principal, kind, data, legacy=legacy, prefix=prefix, now=now, nul_free=nul_free
            )
        except _NeedsDirectory as need:
            node = await self.resolve_node(
                principal,
                need.payload_nid,
                need.username,
                legacy=False if kind == "detections" else legacy,
                prefix=prefix,
                analysed_by=need.analysed_by,
            )
        return self.build_now(
            principal,
            kind,
            data,
            legacy=legacy,
            prefix=prefix,
            now=now,
            node=node,
            nul_free=nul_free,
        )

    def build_now(
        self,
        principal: Principal,
        kind: str,
        data: Any,
        legacy: bool,
        prefix: str = "",
        now: datetime | None = None,
        node: Node | None = None,
        own: Node | None = None,
        nul_free: bool = False,
    ) -> Record:
        """The record; ``_NeedsDirectory`` when its node needs a look-up that waits (``node``:
        that look-up's answer). ``own``: an edge token's own node, decided once for a batch
        (``own_node``), for the records that name no other. ``nul_free``: see ``validate``."""
        payload = self.validate(kind, data, prefix, nul_free=nul_free)
        now = now or datetime.now(UTC)
        if kind == "usage":
            return self._usage(principal, payload, now, legacy, prefix, node, own)
        if kind == "environment":
            return self._environment(principal, payload, now, legacy, prefix, node, own)
        return self._detections(principal, payload, now, prefix, node, own)

    def own_node(self, principal: Principal) -> Node | None:
        """An edge token's node, as every record that names no other node (or names it) gets it
        from ``resolve_now``; None for other callers."""
        if principal.kind != "edge":
            return None
        return self.resolve_now(principal, None, None, legacy=False)

    def _node(
        self,
        principal: Principal,
        node: Node | None,
        own: Node | None,
        payload_nid: str | None,
        username: str | None,
        legacy: bool,
        prefix: str,
        analysed_by: str | None = None,
    ) -> Node:
        if node is not None:
            return node
        if own is not None and (payload_nid is None or payload_nid == own[0]):
            return own
        found = self.resolve_now(
            principal, payload_nid, username, legacy=legacy, prefix=prefix, analysed_by=analysed_by
        )
        if found is None:
            raise _NeedsDirectory(payload_nid, username, analysed_by)
        return found

    def _usage(
        self,
        principal: Principal,
        p: UsageIn,
        now: datetime,
        legacy: bool,
        prefix: str,
        node: Node | None,
        own: Node | None,
    ) -> Record:
        nid, known, auth = self._node(principal, node, own, p.nid, p.username, legacy, prefix)
        ts = p.ts
        if ts is None:
            ts = now  # the time it arrived: within the accepted span
        else:
            self._check_ts(ts, now, "ts", prefix)
        # Positional, in UsageRecord's (the table's) order: keywords cost more per record.
        return UsageRecord(
            nid,
            ts,
            now,
            p.cpu,
            p.memory,
            p.func,
            p.username,
            p.code,
            p.message,
            auth,
            known,
        )

    def _environment(
        self,
        principal: Principal,
        p: EnvironmentIn,
        now: datetime,
        legacy: bool,
        prefix: str,
        node: Node | None,
        own: Node | None,
    ) -> Record:
        nid, known, auth = self._node(principal, node, own, p.nid, None, legacy, prefix)
        zone, assumed = self.zone_for(nid)
        ts = self._field_ts(p, prefix, zone)
        self._check_ts(ts, now, "date", prefix, read_as=f"{p.date} {p.time} read in {assumed}")
        condition = self.directory.condition_for(p.result)
        # Positional, in EnvironmentRecord's (the table's) order: keywords cost more per record.
        return EnvironmentRecord(
            nid,
            ts,
            now,
            p.result,
            condition,
            auth,
            known,
        )

    def _detections(
        self,
        principal: Principal,
        p: DetectionsIn,
        now: datetime,
        prefix: str,
        node: Node | None,
        own: Node | None,
    ) -> Record:
        if len(p.detections) > self.settings.detections_max_items:
            raise Rejected(
                f"at most {self.settings.detections_max_items} detections per summary",
                field=_prefixed(prefix, "detections"),
                reason="too_many",
            )
        self._check_ts(p.ts, now, "ts", prefix)
        analysed_by = str(p.analysed_by) if p.analysed_by is not None else None
        nid, known, auth = self._node(principal, node, own, p.nid, None, False, prefix, analysed_by)
        boxes = [
            {"class": d.class_, "class_id": d.class_id, "confidence": d.confidence, "box": d.box}
            for d in p.detections
        ]
        inference = p.inference_ms or None
        min_confidence = min((d.confidence for d in p.detections), default=None)
        summary = {
            "model": p.model,
            "model_version": p.model_version,
            "fps": p.fps,
            "frames": p.frames,
            "counts": p.counts,
            "detected": len(boxes),
            "below_threshold": p.below_threshold,
            "frames_sent_up": p.frames_sent_up,
            "conf_threshold": p.conf_threshold,
            "min_confidence": min_confidence,
            "inference_ms": inference.model_dump() if inference else None,
            "analysed_by": p.analysed_by,
        }
        for key in ("source_unavailable", "analysis_unavailable"):
            if getattr(p, key):
                summary[key] = getattr(p, key)
        # Positional, in DetectionsRecord's (the table's) order: keywords cost more per record.
        return DetectionsRecord(
            nid,
            p.ts,
            now,
            p.model,
            p.model_version,
            p.fps,
            p.frames,
            inference.mean if inference else None,
            inference.p50 if inference else None,
            inference.max if inference else None,
            p.conf_threshold,
            p.counts,
            boxes,
            len(boxes),
            p.below_threshold,
            p.frames_sent_up,
            min_confidence,
            auth,
            known,
            p.analysed_by,
            summary,
        )

    # -- entry points --------------------------------------------------------------------------
    async def ingest_one(
        self, principal: Principal, kind: str, data: Any, *, legacy: bool, nul_free: bool = False
    ) -> Record:
        """One record, committed. ``nul_free``: the body held no NUL (``schemas.free_of_nul``)."""
        if principal.kind == "anonymous" and not (legacy and self.settings.allow_anonymous):
            raise Unauthorized()  # before the payload: a stranger learns nothing of it
        try:
            record = await self.build(principal, kind, data, legacy=legacy, nul_free=nul_free)
        except Rejected as exc:
            self.metrics.rejects.labels(exc.reason).inc()
            raise
        await self.committer.submit([record])
        return record

    async def ingest_batch(
        self, principal: Principal, body: Any, *, nul_free: bool = False
    ) -> dict[str, Any]:
        """Validate each record on its own, commit the valid ones together, answer per record.
        ``nul_free``: the body held no NUL (``schemas.free_of_nul``)."""
        if principal.kind == "anonymous":
            raise Unauthorized()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise Rejected('expected {"records": [...]}', field="records", reason="invalid")
        items = body["records"]
        if len(items) > self.settings.batch_max_records:
            raise Rejected(
                f"at most {self.settings.batch_max_records} records per batch",
                field="records",
                reason="too_many",
            )
        refused: dict[int, dict[str, Any]] = {}
        good: list[Record] = []
        now = datetime.now(UTC)
        own = self.own_node(principal)
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise Rejected(
                        "must be an object {kind, data}",
                        field=f"records[{index}]",
                        reason="invalid",
                    )
                kind = item.get("kind")
                if kind not in PAYLOADS:
                    raise Rejected(
                        f"kind must be one of {', '.join(PAYLOADS)}",
                        field=f"records[{index}].kind",
                        reason="invalid",
                    )
                data, where = item.get("data"), f"records[{index}].data"
                try:
                    # Positional (legacy, prefix, now, node, own, nul_free): keywords cost more
                    # per record.
                    record = self.build_now(
                        principal, kind, data, False, where, now, None, own, nul_free
                    )
                except _NeedsDirectory:
                    record = await self.build(
                        principal, kind, data, legacy=False, prefix=where, now=now
                    )
                good.append(record)
            except (Rejected, Forbidden) as exc:
                self.metrics.rejects.labels(getattr(exc, "reason", "forbidden")).inc()
                refused[index] = {
                    "index": index,
                    "status": "rejected",
                    "field": exc.field,
                    "problem": exc.message,
                }
        if good:
            await self.committer.submit(good)
        if refused:
            results = [refused.get(i) or _stored(i) for i in range(len(items))]
        else:
            results = _all_stored(len(items))
        return {"results": results, "stored": len(good), "rejected": len(refused)}


def _stored(index: int) -> dict[str, Any]:
    return {"index": index, "status": "stored"}


_ALL_STORED: dict[int, list[dict[str, Any]]] = {}


def _all_stored(n: int) -> list[dict[str, Any]]:
    """The results of a batch of ``n`` records all stored, made once per size (a batch holds at
    most VMS_BATCH_MAX_RECORDS): shared by every answer of that size, never changed."""
    results = _ALL_STORED.get(n)
    if results is None:
        if len(_ALL_STORED) >= 64:
            _ALL_STORED.clear()
        results = _ALL_STORED[n] = [_stored(i) for i in range(n)]
    return results


IngestDep = Annotated[IngestService, Depends(from_app_state("ingest", IngestService))]
