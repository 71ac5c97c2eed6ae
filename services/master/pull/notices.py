"""Update notices to the edges over MQTT: retained, QoS 1, one topic per node.

One tracked task holds one connection to the broker and publishes what ``notify`` queued (the
latest notice per node: a burst of changes is one message). A broker that is down or restarts is
retried with backoff; notices queued meanwhile go out once it is back, and being retained, reach
agents that were offline as soon as they reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiomqtt
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.contracts.live_view import LiveViewRequest, live_topic
from shared.contracts.updates import UpdateNotice, notice_topic
from shared.mqtt import BrokerAddress

log = logging.getLogger("edge.master.notices")

BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 15.0
# Notices in flight at once (each QoS 1 publish waits for its PUBACK). aiomqtt walks every
# pending call on each publish (twice), so a fleet-wide update of 5,000 notices all in flight
# cost the master ~9 % of its CPU in that walk alone and queued the last notice behind the
# rest; a window of a few hundred keeps the loopback broker busy at a fraction of the cost.
PUBLISH_IN_FLIGHT = 256
# aiomqtt logs a warning for every publish made while more than its threshold (10) are in
# flight; a fleet-wide update publishes a window of notices at once, by design.
PENDING_PUBLISH_WARN = 1_000_000


class NoticePublisher:
    def __init__(
        self,
        broker: BrokerAddress | None,
        *,
        registry: CollectorRegistry | None = None,
        topic_prefix: str = "edge",
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        client_id: str = "edge-master",
        spread_s: Callable[[], float] = lambda: 0.0,
    ):
        self.broker = broker
        self.topic_prefix = topic_prefix
        self._tls = broker.tls_context(ca_file, cert_file, key_file) if broker else None
        self._client_id = client_id
        self._spread_s = spread_s  # how long agents spread their fetches over, now
        self._pending: dict[str, UpdateNotice] = {}
        self._live: dict[str, LiveViewRequest] = {}  # live-view requests, the latest per node
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.published = Counter(
            "master_update_notices_total",
            "Update notices published to the broker, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.connected_gauge = Gauge(
            "master_update_broker_connected",
            "1 while the master holds its connection to the MQTT broker",
            registry=registry,
        )

    def start(self) -> None:
        if self.broker is None:
            log.info("no MASTER_MQTT_URL: agent-pull edges get no notices (they poll slowly)")
            return
        self._task = asyncio.create_task(self._run(), name="update-notices")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def notify(self, nid: str, *, tag: str, generation: int) -> None:
        """Queue the notice for ``nid`` (replacing one not yet sent)."""
        if self.broker is None:
            self.published.labels("no_broker").inc()
            return
        self._pending[nid] = UpdateNotice(
            nid=nid,
            tag=tag,
            generation=generation,
            sent_at=time.time(),
            spread_s=round(self._spread_s(), 3),
        )
        self._wake.set()

    def request_live_view(self, request: LiveViewRequest) -> bool:
        """Queue a live-view request for its node (not retained: one nobody renews ends at its
        TTL). False when there is no broker to send it through."""
        if self.broker is None:
            return False
        self._live[request.nid] = request
        self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _run(self) -> None:
        assert self.broker is not None
        b = self.broker
        delay = BACKOFF_START_S
        while True:
            try:
                async with aiomqtt.Client(
                    b.host,
                    b.port,
                    username=b.username,
                    password=b.password,
                    tls_context=self._tls,
                    identifier=self._client_id,
                    clean_session=True,
                    timeout=10,
                    max_concurrent_outgoing_calls=PUBLISH_IN_FLIGHT,
                ) as client:
                    client.pending_calls_threshold = PENDING_PUBLISH_WARN
                    self._set_connected(True)
                    delay = BACKOFF_START_S
                    log.info("connected to the MQTT broker %s", b)
                    await self._publish_forever(client)
            except aiomqtt.MqttError as exc:
                self._set_connected(False)
                log.warning("MQTT broker %s: %s; retrying in %.1fs", b, exc, delay)
                await asyncio.sleep(delay)  # backoff before reconnecting
                delay = min(delay * 2, BACKOFF_CAP_S)

    async def _publish_forever(self, client: aiomqtt.Client) -> None:
        while True:
            if not self._pending and not self._live:
                self._wake.clear()
                await self._wake.wait()
            await self._publish_live(client)
            if not self._pending:
                continue
            batch, self._pending = self._pending, {}
            now = time.time()  # sent_at: when it goes to the broker, not when it was queued
            batch = {nid: n.model_copy(update={"sent_at": now}) for nid, n in batch.items()}
            try:
                # QoS 1: each publish waits for the broker's PUBACK.
                await asyncio.gather(
                    *(
                        client.publish(
                            notice_topic(nid, self.topic_prefix),
                            notice.model_dump_json(),
                            qos=1,
                            retain=True,
                        )
                        for nid, notice in batch.items()
                    )
                )
            except aiomqtt.MqttError:
                for nid, notice in batch.items():  # resent after the reconnect, unless newer
                    self._pending.setdefault(nid, notice)
                self.published.labels("retried").inc(len(batch))
                raise
            self.published.labels("published").inc(len(batch))

    async def _publish_live(self, client: aiomqtt.Client) -> None:
        live, self._live = self._live, {}
        if live:
            # Not retained: a view nobody renews must not start again when an agent reconnects.
            await asyncio.gather(
                *(
                    client.publish(
                        live_topic(nid, self.topic_prefix), r.model_dump_json(), qos=1, retain=False
                    )
                    for nid, r in live.items()
                )
            )

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        self.connected_gauge.set(1 if up else 0)
