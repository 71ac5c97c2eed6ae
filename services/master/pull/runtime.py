"""The agent-pull runtime's parts, built once per master: the board of desired sets, the MQTT
notice publisher, the driver the reconcile loop uses, and the update metrics."""

from __future__ import annotations

import logging
import time

from prometheus_client import Gauge, Histogram

from edge_common.vocabulary import WorkloadState
from services.master.context import MasterContext
from services.master.pull.board import DesiredBoard
from services.master.pull.driver import PullAgentDriver
from services.master.pull.notices import NoticePublisher
from services.master.pull.shared import SharedBoard
from shared.contracts.updates import ObservedSet
from shared.mqtt import parse_broker_url

log = logging.getLogger("edge.master.pull")

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)


class PullRuntime:
    def __init__(self, ctx: MasterContext):
        s = self.settings = ctx.settings
        registry = ctx.metrics.registry if ctx.metrics is not None else None
        broker = None
        if s.mqtt_url:
            password = s.mqtt_password.get_secret_value() if s.mqtt_password else None
            broker = parse_broker_url(s.mqtt_url, username=s.mqtt_username, password=password)
        self.board = DesiredBoard(s.agent_key_for)
        self.notices = NoticePublisher(
            broker,
            registry=registry,
            topic_prefix=s.mqtt_topic_prefix,
            ca_file=s.mqtt_ca_file,
            cert_file=s.mqtt_cert_file,
            key_file=s.mqtt_key_file,
            spread_s=self._spread_s,
        )
        # Several processes serve the site: the board is shared through Postgres.
        self.shared = (
            SharedBoard(s, ctx.engine, self.board)
            if s.board_shared and ctx.engine is not None
            else None
        )
        self.driver = PullAgentDriver(self.board, self.notices, self.shared)
        self.report_s = s.agent_report_s
        self.notice_to_running = Histogram(
            "master_update_notice_to_running_seconds",
            "From the master publishing a notice to the agent reporting that desired set running",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.patch_apply = Histogram(
            "master_update_patch_apply_seconds",
            "Time agents took to apply a binary patch (as they report it)",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=registry,
        )
        self.agents_connected = Gauge(
            "master_update_agents_connected",
            "Pull agents that reported within twice MASTER_AGENT_REPORT_S",
            registry=registry,
        )
        self.agents_connected.set_function(lambda: self.board.reporting(2 * self.report_s))

    def _spread_s(self) -> float:
        """How long agents spread a notice's fetch over: the pull edges at the planned rate."""
        s = self.settings
        return min(s.pull_spread_max_s, self.board.pull_edges() / s.pull_fetches_per_s)

    def take_report(self, nid: str, body: ObservedSet, *, at: float | None = None) -> bool:
        """An agent's report, on the board and in the update metrics; True when what its
        workloads do changed (setup should hear it at once)."""
        board = self.board.edge(nid)
        before = board.observed
        self.board.report(nid, body, at=at)
        for seconds in body.patch_apply_seconds:
            self.patch_apply.observe(seconds)
        running = {w.name for w in body.workloads if w.state == WorkloadState.RUNNING}
        if (
            body.notice_sent_at is not None
            and body.applied_tag == board.tag
            and board.latency_tag != board.tag
            and set(board.committed) <= running
        ):
            board.latency_tag = board.tag
            self.notice_to_running.observe(max(0.0, time.time() - body.notice_sent_at))
        return _states(before) != _states(body)

    def start(self) -> None:
        self.notices.start()

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.stop()
        await self.notices.stop()


def _states(observed: ObservedSet | None) -> list[tuple]:
    if observed is None:
        return []
    return sorted((w.name, w.state, w.generation, w.restarts, w.reason) for w in observed.workloads)
