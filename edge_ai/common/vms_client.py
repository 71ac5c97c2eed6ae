"""The VMS client every edge program uses: one route per record kind, a buffer on disk, /batch.

Record kinds and the VMS routes they go to (built from the VMS IP and Port):

===========  ===================  ================================================================
kind         route                sent by
===========  ===================  ================================================================
environment  POST /save_edgeData  weather AI: {nid, date, time, result}
usage        POST /usage          monitoring AI: {code, message, username, cpu, memory, func, nid}
detections   POST /detections     YOLO worker: the per-second summary
===========  ===================  ================================================================

Buffered records go out through ``POST /batch`` ``{"records": [{"kind", "data"}]}``, which answers
each record's fate; a VMS without /batch (404/405, the field's) gets them one by one instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from edge_ai.common.buffer import BufferedRecord, DiskBuffer
from edge_ai.common.config import EdgeConfig
from edge_ai.common.http import AsyncHttp, async_client, retry_after
from edge_ai.common.sender import DELIVERED, BufferedSender, Delivery, Outcome

log = logging.getLogger("edge_ai.vms")

ROUTES = {"environment": "/save_edgeData", "usage": "/usage", "detections": "/detections"}
BATCH_ROUTE = "/batch"
# Answers that say "not now" rather than "not this record": the record is kept and retried.
# 401/403 included: a wrong or revoked token is fixed by the operator, the data is still good
# (unlike shared.service_client, where a service's refused credential is an error at once).
_RETRY_STATUSES = {401, 403, 408, 425, 429}


def classify(response: httpx.Response) -> Delivery:
    status = response.status_code
    if 200 <= status < 300:
        return DELIVERED
    reason = f"HTTP {status}: {response.text[:300]}"
    if status >= 500 or status in _RETRY_STATUSES:
        return Delivery(Outcome.RETRY, reason, retry_after(response))
    return Delivery(Outcome.REJECTED, reason)


def transport_failure(exc: httpx.HTTPError) -> Delivery:
    return Delivery(
        Outcome.RETRY, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    )


async def post(http: AsyncHttp, url: str, **kw: Any) -> httpx.Response | Delivery:
    """POST once: the answer, or a transport failure as the RETRY it stands for. The one place
    the edge programs catch httpx's errors; what an answer means is ``classify``'s."""
    try:
        return await http.post(url, **kw)
    except httpx.HTTPError as exc:
        return transport_failure(exc)


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class VmsClient:
    """``submit(kind, data)`` and forget: delivery, buffering and ordering happen in the
    background."""

    def __init__(self, config: EdgeConfig, *, program: str, http: AsyncHttp | None = None):
        self.config = config
        self.base_url = config.vms_url
        self._http = http or async_client(
            timeout=config.http_timeout, headers=_headers(config.token)
        )
        self._owns_http = http is None
        buffer = DiskBuffer(
            config.buffer_dir / f"{program}-vms.sqlite", max_records=config.buffer_max_records
        )
        self.sender = BufferedSender(
            name="vms",
            buffer=buffer,
            deliver_one=self._post_one,
            deliver_batch=self._post_batch,
            batch_size=config.batch_size,
            backoff_min=config.backoff_min,
            backoff_max=config.backoff_max,
        )

    def start(self) -> None:
        self.sender.start()

    def submit(self, kind: str, data: dict[str, Any]) -> None:
        if kind not in ROUTES:
            raise ValueError(f"unknown record kind {kind!r}; one of {sorted(ROUTES)}")
        self.sender.submit(kind, data)

    async def close(self, grace_s: float = 5.0) -> None:
        await self.sender.close(grace_s)
        if self._owns_http:
            await self._http.aclose()

    async def _post_one(self, record: BufferedRecord) -> Delivery:
        response = await post(self._http, self.base_url + ROUTES[record.kind], json=record.data)
        return response if isinstance(response, Delivery) else classify(response)

    async def _post_batch(self, batch: Sequence[BufferedRecord]) -> list[Delivery] | Delivery:
        body = {"records": [{"kind": r.kind, "data": r.data} for r in batch]}
        response = await post(self._http, self.base_url + BATCH_ROUTE, json=body)
        if isinstance(response, Delivery):
            return response
        verdict = classify(response)
        if verdict.outcome is Outcome.RETRY:
            return verdict
        if verdict.outcome is Outcome.REJECTED:
            # No /batch (the field's VMS), a batch too large, or the whole body refused: one by one,
            # so the good records get in and each bad one is refused on its own.
            log.info(
                "/batch answered %s; sending %d records one by one",
                response.status_code,
                len(batch),
            )
            return await self.sender.one_by_one(batch)
        return _batch_results(response, batch)


def _batch_results(
    response: httpx.Response, batch: Sequence[BufferedRecord]
) -> list[Delivery] | Delivery:
    try:
        results = response.json()["results"]
        by_index = {int(r["index"]): r for r in results}
    except (ValueError, KeyError, TypeError) as exc:
        return Delivery(Outcome.RETRY, f"unreadable /batch answer: {exc}")
    deliveries: list[Delivery] = []
    for index, _record in enumerate(batch):
        result = by_index.get(index)
        if result is None:
            deliveries.append(Delivery(Outcome.RETRY, f"/batch answer lacks index {index}"))
        elif result.get("status") == "stored":
            deliveries.append(DELIVERED)
        elif result.get("status") == "rejected":
            detail = {k: v for k, v in result.items() if k not in {"index", "status"}}
            deliveries.append(Delivery(Outcome.REJECTED, json.dumps(detail)[:300]))
        else:
            deliveries.append(Delivery(Outcome.RETRY, f"/batch status {result.get('status')!r}"))
    return deliveries


class AnalysisClient:
    """Frames (JPEG + metadata) for the analysis server, buffered like the VMS records.

    ``POST <analysis URL>`` as multipart/form-data: ``image`` (image/jpeg) and ``metadata`` (JSON
    text). The URL is asked for at send time: routing may move it while the program runs.
    """

    def __init__(
        self,
        config: EdgeConfig,
        *,
        program: str,
        url: Callable[[], str | None],
        max_frames: int = 100,
        http: AsyncHttp | None = None,
    ):
        self._url = url
        self._http = http or async_client(
            timeout=max(config.http_timeout, 10.0), headers=_headers(config.token)
        )
        self._owns_http = http is None
        buffer = DiskBuffer(
            Path(config.buffer_dir) / f"{program}-analysis.sqlite", max_records=max_frames
        )
        self.sender = BufferedSender(
            name="analysis",
            buffer=buffer,
            deliver_one=self._post_frame,
            batch_size=1,
            backoff_min=config.backoff_min,
            backoff_max=config.backoff_max,
            queue_max=max_frames,
        )

    def start(self) -> None:
        self.sender.start()

    def submit(self, jpeg: bytes, metadata: dict[str, Any]) -> None:
        self.sender.submit("frame", metadata, jpeg)

    async def close(self, grace_s: float = 5.0) -> None:
        await self.sender.close(grace_s)
        if self._owns_http:
            await self._http.aclose()

    async def _post_frame(self, record: BufferedRecord) -> Delivery:
        url = self._url()
        if not url:
            return Delivery(Outcome.RETRY, "no analysis URL configured")
        files = {"image": ("frame.jpg", record.blob or b"", "image/jpeg")}
        data = {"metadata": json.dumps(record.data)}
        response = await post(self._http, url, files=files, data=data)
        return response if isinstance(response, Delivery) else classify(response)
