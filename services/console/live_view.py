"""Live view, the console's part: the browsers watching an edge share one upstream per edge. While
at least one watches, the console renews the edge's live-view request at the master every
RENEW_S (the master sends it to the edge over MQTT; the edge's YOLO worker then posts frames to the
VMS until the request's TTL ends) and waits at the VMS for each new frame, handed to every viewer
as a Server-Sent Event. When the last viewer goes, the request is withdrawn (TTL 0): nothing flows
when nobody watches. The request is a change at the master: it is sent with the operator
credential of a viewer's session (the newest viewer's); the frames are reads, with the console's
own credential.

Events: ``frame`` {seq, edge_seq, jpeg (base64)}; ``status`` {state, detail}: ``waiting`` (asked,
no frame yet), ``camera_down`` (the edge's worker says its camera gives no frame), ``no_frames``
(nothing from the edge: its YOLO worker is not running, or the edge is offline), ``unreachable``
(the master cannot pass the request on)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from services.console.live import sse
from services.console.schemas import LiveFrame, LiveState, LiveStatus
from services.console.upstream import Upstreams
from shared.contracts.live_view import LiveFeedState, LiveViewAsk, LiveViewSettings
from shared.deps import from_app_state
from shared.errors import DomainError

log = logging.getLogger("edge.console.live_view")

RENEW_S = 2.0
TTL_S = 6.0
WAIT_S = 2.0  # one wait at the VMS for the next frame
SILENT_S = 4.0  # no frame for this long after the request: the edge says nothing, so we say so


@dataclass
class Viewer:
    settings: LiveViewSettings
    up: Upstreams  # as the viewer's session reaches the services


@dataclass
class Watch:
    nid: str
    viewers: dict[asyncio.Queue[bytes], Viewer] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def settings(self) -> LiveViewSettings:
        """The most any viewer asks for (one upstream serves them all)."""
        wanted = [v.settings for v in self.viewers.values()] or [LiveViewSettings()]
        return LiveViewSettings(
            fps=max(v.fps for v in wanted),
            width=max(v.width for v in wanted),
            budget_bps=max(v.budget_bps for v in wanted),
        )

    def acting(self) -> Upstreams | None:
        """The services as the newest viewer's session reaches them."""
        return next(reversed(self.viewers.values())).up if self.viewers else None

    def send(self, event: bytes) -> None:
        for queue in self.viewers:
            if queue.full():  # a slow browser gets the newest frames, not a growing backlog
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)


class LiveViews:
    def __init__(self, upstreams: Upstreams) -> None:
        self.up = upstreams
        self.watches: dict[str, Watch] = {}
        self._stopping: set[asyncio.Task[str | None]] = set()

    async def stream(
        self, nid: str, settings: LiveViewSettings, up: Upstreams
    ) -> AsyncIterator[bytes]:
        """One viewer's events; ``up``: the services as the viewer's session reaches them."""
        watch = self.watches.setdefault(nid, Watch(nid))
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=3)
        watch.viewers[queue] = Viewer(settings, up)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(self._upstream(watch), name=f"live-view-{nid}")
        try:
            yield sse(
                "status",
                LiveStatus(state=LiveState.WAITING, detail=f"asking {nid} for its live view"),
            )
            while True:
                yield await queue.get()
        finally:
            del watch.viewers[queue]
            if not watch.viewers:
                self.watches.pop(nid, None)
                if watch.task is not None:
                    watch.task.cancel()
                stop = asyncio.create_task(self._ask(up, nid, LiveViewSettings(), 0.0))  # at once
                self._stopping.add(stop)
                stop.add_done_callback(self._stopping.discard)

    async def _ask(
        self, up: Upstreams, nid: str, settings: LiveViewSettings, ttl_s: float
    ) -> str | None:
        """The request to the master; the problem, if it could not be passed on."""
        body = LiveViewAsk(ttl_s=ttl_s, **settings.model_dump())
        try:
            await up.master.request(
                "POST", f"/edges/{nid}/live-view", json=body.model_dump(), request_timeout=3.0
            )
        except DomainError as exc:
            return str(exc)
        return None

    async def _upstream(self, watch: Watch) -> None:
        async with asyncio.TaskGroup() as group:  # each loop handles its upstream's errors
            group.create_task(self._renew(watch))
            group.create_task(self._frames(watch))

    async def _renew(self, watch: Watch) -> None:
        while (up := watch.acting()) is not None:
            problem = await self._ask(up, watch.nid, watch.settings(), TTL_S)
            if problem:
                watch.send(sse("status", LiveStatus(state=LiveState.UNREACHABLE, detail=problem)))
            await asyncio.sleep(RENEW_S)

    async def _frames(self, watch: Watch) -> None:
        vms = self.up.vms
        after = 0
        with contextlib.suppress(DomainError):
            state = await vms.model("GET", f"/live/{watch.nid}", LiveFeedState)
            after = state.frames  # only frames sent for this view, none from before
        last = time.monotonic()
        while True:
            try:
                response = await vms.request(
                    "GET",
                    f"/live/{watch.nid}/next",
                    params={"after": after, "wait_s": WAIT_S},
                    request_timeout=WAIT_S + 5,
                )
            except DomainError as exc:
                watch.send(sse("status", LiveStatus(state=LiveState.UNREACHABLE, detail=str(exc))))
                await asyncio.sleep(1.0)
                continue
            problem = response.headers.get("x-live-problem")
            if response.status_code == 200:
                after = int(response.headers["x-live-seq"])
                last = time.monotonic()
                frame = LiveFrame(
                    seq=after,
                    edge_seq=int(response.headers.get("x-live-edge-seq", "0")),
                    jpeg=base64.b64encode(response.content).decode(),
                )
                watch.send(sse("frame", frame))
            elif problem:
                watch.send(sse("status", LiveStatus(state=LiveState.CAMERA_DOWN, detail=problem)))
            elif time.monotonic() - last >= SILENT_S:
                silent = time.monotonic() - last
                detail = (
                    f"no frame from {watch.nid} for {silent:.0f} s: its YOLO worker is not "
                    "running, or the edge is offline"
                )
                watch.send(sse("status", LiveStatus(state=LiveState.NO_FRAMES, detail=detail)))


LiveViewsDep = Annotated[LiveViews, Depends(from_app_state("live_views", LiveViews))]
