"""The agent behind NAT (AGENT_MODE=pull): it listens on nothing.

Three outgoing paths, one task each, all tracked and stopped together:

- ``_listen``: one MQTT connection to the broker (TLS and this agent's own user when configured),
  subscribed to its own topic only (``edge/<nid>/desired``, QoS 1). The notice is retained, so an
  agent that was offline gets the latest one when it reconnects; a notice naming another node, or
  one that does not parse, is ignored. A broker that is down, restarts or refuses the login is
  retried with backoff.
- ``_sync``: on a notice (or every AGENT_POLL_S, the safety net) it pulls its desired set from the
  master (``GET /edges/me/desired``, its edge token) and applies it with the supervisor (every
  package fetched and verified before anything changes; a failure keeps what runs and is
  reported, and retried with backoff).
- ``_report``: what runs goes to the master (``POST /edges/me/observed``) after each change and
  every AGENT_REPORT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time

import aiomqtt
import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from edge_ai.agent import AGENT_VERSION
from edge_ai.agent.credentials import BearerFromStore, EdgeTokenStore, token_nid
from edge_ai.agent.fetcher import PackageFetcher
from edge_ai.agent.parts import build_parts
from edge_ai.agent.schemas import WorkloadSpec
from edge_ai.agent.settings import AgentSettings
from edge_ai.agent.supervisor import PrepareError, Supervisor
from edge_ai.common.http import CallFailed, EdgeClient
from edge_common.platforms import architecture
from shared.contracts.live_view import LiveViewRequest, live_topic
from shared.contracts.updates import (
    DesiredSet,
    ObservedSet,
    ObservedWorkloadReport,
    UpdateNotice,
    notice_topic,
)
from shared.mqtt import parse_broker_url

log = logging.getLogger("edge.agent.pull")

BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 60.0
REPORT_GAP_S = 0.2  # reports after a burst of changes are one


class Puller:
    def __init__(
        self,
        settings: AgentSettings,
        supervisor: Supervisor,
        fetcher: PackageFetcher,
        tokens: EdgeTokenStore,
    ):
        self.settings = settings
        self.supervisor = supervisor
        self.fetcher = fetcher
        self.tokens = tokens
        nid = settings.nid or token_nid(tokens.current() or "")
        if not nid:
            raise ValueError("the edge's node id is not known: set AGENT_NID or AGENT_EDGE_TOKEN")
        self.nid = nid
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        assert settings.mqtt_url is not None
        self.broker = parse_broker_url(
            settings.mqtt_url, username=settings.mqtt_username, password=password
        )
        self.topic = notice_topic(nid, settings.mqtt_topic_prefix)
        self.live_topic = live_topic(nid, settings.mqtt_topic_prefix)
        self._master = EdgeClient(
            "master",
            settings.master_url,
            auth=BearerFromStore(tokens),
            timeout=httpx.Timeout(30.0, connect=10.0),
            verify=settings.verify,
        )
        self._wake_sync = asyncio.Event()
        self._wake_report = asyncio.Event()
        self.notice: UpdateNotice | None = None
        self.applied_tag: str | None = None
        self._fetch_at = 0.0  # monotonic time a notice's spread lets the next fetch start
        self.applied_notice_at: float | None = None
        self.error: str | None = None
        self.connected = False
        supervisor.listeners.append(self._wake_report.set)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen(), name="mqtt-notices")
            group.create_task(self._sync(), name="pull-desired")
            group.create_task(self._report(), name="report-observed")

    async def aclose(self) -> None:
        await self._master.aclose()

    # --- notices -------------------------------------------------------------------------
    async def _listen(self) -> None:
        b = self.broker
        tls = b.tls_context(
            self.settings.mqtt_ca_file, self.settings.mqtt_cert_file, self.settings.mqtt_key_file
        )
        delay = BACKOFF_START_S
        while True:
            try:
                async with aiomqtt.Client(
                    b.host,
                    b.port,
                    username=b.username,
                    password=b.password,
                    tls_context=tls,
                    identifier=f"agent-{self.nid}",
                    keepalive=30,
                    timeout=10,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    await client.subscribe(self.live_topic, qos=1)
                    self.connected = True
                    delay = BACKOFF_START_S
                    log.info("listening for update notices on %s at %s", self.topic, b)
                    async for message in client.messages:
                        self.on_message(str(message.topic), bytes(message.payload or b""))
            except aiomqtt.MqttError as exc:
                self.connected = False
                log.warning("MQTT broker %s: %s; reconnecting in %.0fs", b, exc, delay)
            await asyncio.sleep(delay)  # backoff between connection attempts
            delay = min(delay * 2, BACKOFF_CAP_S)

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.live_topic:
            self.on_live_view(payload)
            return
        if topic != self.topic:
            log.warning("ignored a message on %s (this agent reads only %s)", topic, self.topic)
            return
        if not payload:
            return  # a cleared retained message
        try:
            notice = UpdateNotice.model_validate_json(payload)
        except ValidationError:
            log.warning("ignored a notice that does not parse on %s", topic)
            return
        if notice.nid != self.nid:
            log.warning("ignored a notice for node %s (this is %s)", notice.nid, self.nid)
            return
        self.notice = notice
        if notice.tag != self.applied_tag:
            log.info("update notice: desired set %s (generation %s)", notice.tag, notice.generation)
            # Spread over the window the master asks for: a fleet-wide update, one steady stream.
            self._fetch_at = time.monotonic() + random.uniform(0.0, notice.spread_s)
            self._wake_sync.set()

    def on_live_view(self, payload: bytes) -> None:
        """A live-view request: written for the workers (``<live folder>/view.json``), which
        post frames to the VMS until its ``until`` (this edge's clock)."""
        try:
            request = LiveViewRequest.model_validate_json(payload)
        except ValidationError:
            log.warning("ignored a live-view request that does not parse")
            return
        if request.nid != self.nid:
            log.warning(
                "ignored a live-view request for node %s (this is %s)", request.nid, self.nid
            )
            return
        self.supervisor.request_live_view(
            request.fps, request.width, request.budget_bps, request.ttl_s
        )

    # --- desired set ---------------------------------------------------------------------
    async def _sync(self) -> None:
        self._wake_sync.set()  # once at start: what was desired while the agent was down
        delay = BACKOFF_START_S
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake_sync.wait(), timeout=self.settings.poll_s)
            self._wake_sync.clear()
            wait = self._fetch_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if await self.sync_once():
                delay = BACKOFF_START_S
                continue
            # Failed: try again after a pause (a newer notice wakes it sooner).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake_sync.wait(), timeout=delay)
            self._wake_sync.set()
            delay = min(delay * 2, BACKOFF_CAP_S)

    async def sync_once(self) -> bool:
        """Pull and apply the desired set; False when it has to be tried again."""
        notice = self.notice
        try:
            # The set applied last, by its tag (ETag): unchanged, the master answers a bare 304.
            headers = {"If-None-Match": f'"{self.applied_tag}"'} if self.applied_tag else {}
            response = await self._master.request(
                "GET", "/edges/me/desired", headers=headers, allow=(304,)
            )
        except CallFailed as exc:
            log.warning("no desired set from the master: %s", exc)
            return False
        if response.status_code == 304:
            return True
        try:
            desired = DesiredSet.model_validate_json(response.content)
            specs = [WorkloadSpec.model_validate(w.model_dump()) for w in desired.workloads]
        except ValidationError as exc:
            self._failed(f"the desired set does not validate: {exc.errors()[:3]}")
            return False
        if desired.nid != self.nid:
            self._failed(f"the master answered the desired set of {desired.nid}")
            return False
        if desired.tag == self.applied_tag:
            return True
        try:
            await self.supervisor.replace_all(specs)
        except PrepareError as exc:
            self._failed(f"{exc.name}: {exc}")
            return False
        self.applied_tag, self.error = desired.tag, None
        self.applied_notice_at = (
            notice.sent_at if notice is not None and notice.tag == desired.tag else None
        )
        log.info("applied desired set %s: %d workload(s)", desired.tag, len(specs))
        self._wake_report.set()
        return True

    def _failed(self, why: str) -> None:
        log.warning("desired set not applied, what runs is kept: %s", why)
        self.error = why
        self._wake_report.set()

    # --- reports -------------------------------------------------------------------------
    def observed(self) -> ObservedSet:
        return ObservedSet(
            applied_tag=self.applied_tag,
            notice_sent_at=self.applied_notice_at,
            error=self.error,
            architecture=architecture(),
            workloads=[
                ObservedWorkloadReport.model_validate(s.model_dump(exclude={"live", "previous"}))
                for s in self.supervisor.statuses()
            ],
            patch_apply_seconds=self.fetcher.patch_seconds[:1000],
        )

    async def _report(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake_report.wait(), timeout=self.settings.report_s)
            await asyncio.sleep(REPORT_GAP_S)  # a burst of changes: one report
            self._wake_report.clear()
            await self.report_once()

    async def report_once(self) -> bool:
        body = self.observed()
        try:
            await self._master.request(
                "POST", "/edges/me/observed", content=body.model_dump_json().encode(), headers=_JSON
            )
        except CallFailed as exc:
            log.warning("no report to the master: %s", exc)
            return False
        del self.fetcher.patch_seconds[: len(body.patch_apply_seconds)]
        return True


_JSON = {"Content-Type": "application/json"}


async def run_pull_agent(settings: AgentSettings) -> None:
    """The agent in pull mode, until SIGTERM/SIGINT: no socket is listened on."""
    parts = build_parts(settings)
    tokens, fetcher, supervisor = parts.tokens, parts.fetcher, parts.supervisor
    puller = Puller(settings, supervisor, fetcher, tokens)
    scheduler = AsyncIOScheduler()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await supervisor.start()
    await tokens.renew_if_due()
    scheduler.add_job(
        tokens.renew_if_due, "interval", seconds=settings.token_check_s, id="renew-edge-token"
    )
    scheduler.start()
    log.info(
        "edge agent %s for node %s in pull mode (%s, topic %s): listening on no port",
        AGENT_VERSION,
        puller.nid,
        puller.broker,
        puller.topic,
    )
    started = time.monotonic()
    task = asyncio.create_task(puller.run(), name="puller")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopping):
            t.cancel()
        for t in (task, stopping):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        scheduler.shutdown(wait=False)
        await supervisor.shutdown()
        await puller.aclose()
        await fetcher.aclose()
        log.info(
            "edge agent stopped after %.0fs; no workload left running", time.monotonic() - started
        )
