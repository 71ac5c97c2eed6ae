"""The VMS's analysis inbox, consumed over the VMS's HTTP API (never its tables).

Each cycle: post the results of finished inbox jobs back to the VMS (``PUT /analysis/{id}/result``,
idempotent there), then claim queued frames (``POST /analysis/claim``: a lease, so frames of a
gateway that stopped are claimed again later), fetch each image and queue it as a job that
remembers the frame's id. A cached image is answered without a job. When the queue is full the
rest of the claim is left to its lease.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError
from redis.exceptions import RedisError

from services.analysis.fusion import fuse
from services.analysis.gateway import Gateway
from services.analysis.images import check_image
from services.analysis.queue import JobMeta
from shared.contracts.analysis import (
    AnalysisResult,
    Detection,
    InboxClaim,
    InboxClaimRequest,
    InboxResult,
    JobError,
)
from shared.errors import DomainError
from shared.service_client import ServiceClient

log = logging.getLogger("edge.analysis.inbox")


def inbox_result(result: AnalysisResult) -> InboxResult:
    return InboxResult(
        status="done" if result.status == "done" else "failed",
        model=result.model,
        detections=result.detections,
        fused=result.fused,
        error=result.error,
        analysed_at=datetime.now(UTC),
    )


def _edge_boxes(metadata: dict) -> list[Detection]:
    """The edge's own boxes from the frame's metadata; malformed ones are skipped."""
    boxes = []
    for raw in metadata.get("detections") or []:
        if not isinstance(raw, dict):
            continue
        try:
            boxes.append(Detection.model_validate({**raw, "source": "edge"}))
        except ValidationError:
            continue
    return boxes


class VmsInbox:
    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        s = gateway.settings
        token = s.own_credential()  # the analysis service's own, scoped credential
        self.vms = ServiceClient("vms", s.vms_url, token=token, timeout=s.vms_timeout_s)

    async def close(self) -> None:
        await self.vms.aclose()

    async def cycle(self) -> None:
        try:
            await self.post_results()
            await self.claim_frames()
        except DomainError as exc:  # the VMS unreachable or refusing: the next cycle tries again
            log.warning("VMS inbox cycle stopped: %s", exc.message)
        except RedisError as exc:
            log.warning("VMS inbox cycle stopped: %s", exc)

    async def post_results(self) -> None:
        g = self.gateway
        while True:
            raw = await g.redis.lpop(g.keys.vms_outbox)
            if not isinstance(raw, bytes):  # None: the outbox is empty
                return
            result = AnalysisResult.model_validate_json(raw)
            try:
                await self.write_back(result.vms_request_id, inbox_result(result))
            except DomainError:
                await g.redis.lpush(g.keys.vms_outbox, raw)  # retried next cycle
                raise

    async def write_back(self, request_id: int | None, body: InboxResult) -> None:
        r = await self.vms.request(
            "PUT",
            f"/analysis/{request_id}/result",
            content=body.model_dump_json(by_alias=True).encode(),
            headers={"Content-Type": "application/json"},
            allow=(404,),
        )
        if r.status_code == 404:
            log.warning("VMS frame %s is gone; result dropped", request_id)
            return
        self.gateway.metrics.vms_frames.labels("answered").inc()

    async def claim_frames(self) -> None:
        g = self.gateway
        s = g.settings
        ask = InboxClaimRequest(limit=s.inbox_batch, lease_s=s.lease_s * 4)
        claim = await self.vms.model(
            "POST", "/analysis/claim", InboxClaim, json=ask.model_dump(mode="json")
        )
        for frame in claim.frames:
            g.metrics.vms_frames.labels("claimed").inc()
            image = (await self.vms.request("GET", f"/analysis/{frame.id}/image")).content
            edge = _edge_boxes(frame.metadata)
            try:
                checked = check_image(image, max_pixels=s.max_image_pixels)
            except DomainError as exc:
                await self.write_back(
                    frame.id,
                    InboxResult(
                        status="failed",
                        model=s.model_name,
                        analysed_at=datetime.now(UTC),
                        error=JobError(type="invalid", message=exc.message, field="image"),
                    ),
                )
                continue
            cached = await g.cache.get(s.model_name, checked.sha256)
            if cached is not None:
                g.metrics.cache.labels("hit").inc()
                fused = fuse(edge, cached.detections, threshold=s.fusion_iou) if edge else None
                await self.write_back(
                    frame.id, inbox_result(cached.model_copy(update={"fused": fused}))
                )
                continue
            meta = JobMeta(
                image_sha256=checked.sha256,
                nid=frame.nid,
                edge_detections=[d.as_json() for d in edge],
                vms_request_id=frame.id,
            )
            try:
                await g.submit(image, meta, owner="vms")
            except DomainError as exc:  # queue full or Redis down: the lease brings the rest back
                log.info(
                    "VMS inbox: %s; %d frames left to their lease", exc.message, len(claim.frames)
                )
                return
            g.metrics.vms_frames.labels("queued").inc()
