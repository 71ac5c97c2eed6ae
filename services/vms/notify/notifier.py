"""Push channel to the optimizer: POST {EDGE_OPTIMIZER_URL}/events, through an Outbox.

Ingest never waits for it: events (shared.contracts.events) go into the outbox's bounded queue
and are dropped when it is full or the optimizer does not answer (the optimizer's 30 s resync
from GET /nodes/state covers them). Deliveries are counted in
``vms_outbox_deliveries_total{target="optimizer",kind=<event type>,outcome}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from services.vms.settings import VmsSettings
from shared.contracts.events import Event
from shared.service_client import Outbox, OutboxMetrics, ServiceClient


def optimizer_outbox(settings: VmsSettings, registry: CollectorRegistry | None) -> Outbox:
    """The VMS's outbox to the optimizer (start it in the lifespan, stop it on shutdown)."""
    client = ServiceClient(
        "optimizer",
        settings.optimizer_url,
        token=settings.own_credential(),
        timeout=settings.notify_timeout_s,
    )
    return Outbox(
        client,
        metrics=OutboxMetrics(registry, "vms"),
        enabled=settings.notify_optimizer,
        maxsize=settings.notify_queue_size,
    )


def to_wire(event: Event) -> dict[str, Any]:
    """The event as the optimizer's /events takes it: the fields its producer set, and the same
    (but ``type`` and ``nid``) under ``data`` for the optimizer's log."""
    body = event.model_dump(mode="json", exclude_unset=True)
    body["data"] = {k: v for k, v in body.items() if k not in ("type", "nid", "data")}
    return body


def event_publisher(outbox: Outbox) -> Callable[[list[Event]], None]:
    """What the group committer calls with the events of each committed batch."""

    def publish(events: list[Event]) -> None:
        for event in events:
            outbox.send("/events", to_wire(event), kind=event.type.value)

    return publish
