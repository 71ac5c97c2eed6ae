"""The desired set of every pull-mode edge, as the last reconcile pass handed it over, and what
each agent last reported.

A pass stages an edge's changes (``apply``/``remove`` of the pull driver) and commits them at the
end of that edge's pass (``commit``): an agent pulling in the middle of a pass sees the previous
complete set, never half of the new one. Nothing here is kept across a master restart: the first
pass rebuilds it (until then the desired route answers 503), and agents report again.

A restarted master does not know what an edge's waiting deployments (their AI being rebuilt) run
there: it could only publish a set without them, and the agent would stop them. Such an edge is
*held*: nothing is committed or published for it (its desired route answers 503, the agent keeps
what it runs, the broker keeps the last notice) until a pass finds none of its deployments
waiting. Once a set is known, a waiting deployment keeps its place in it (the pass does not
remove it), so this only matters until the first complete pass for the edge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.updates import DesiredSet, DesiredWorkload, ObservedSet


@dataclass
class EdgeBoard:
    nid: str
    committed: dict[str, DesiredWorkload] = field(default_factory=dict)
    tag: str = ""
    generation: int = 0
    staged: dict[str, DesiredWorkload] | None = None
    observed: ObservedSet | None = None
    observed_at: float = 0.0
    latency_tag: str = ""  # the tag whose notice-to-running time was measured
    held: bool = False  # no set known yet, and a deployment waits: nothing published
    body: bytes = b""  # the committed set as the desired route answers it (built once a change)


class DesiredBoard:
    def __init__(self, tag_key: Callable[[str], str]):
        """``tag_key(nid)``: the key a desired set's tag is an HMAC under (the tag says "changed"
        and nothing about the content: the set holds secrets)."""
        self._tag_key = tag_key
        self._edges: dict[str, EdgeBoard] = {}
        self._planned = 0  # the pull edges the last reconcile pass planned for

    def edge(self, nid: str) -> EdgeBoard:
        board = self._edges.get(nid)
        if board is None:
            board = self._edges[nid] = EdgeBoard(nid)
        return board

    def known(self, nid: str) -> EdgeBoard | None:
        return self._edges.get(nid)

    # --- what the pull driver hands over ----------------------------------------------------
    def _staging(self, nid: str) -> dict[str, DesiredWorkload]:
        board = self.edge(nid)
        if board.staged is None:
            board.staged = dict(board.committed)
        return board.staged

    def stage(self, nid: str, spec: DesiredWorkload) -> None:
        self._staging(nid)[spec.name] = spec

    def unstage(self, nid: str, name: str) -> None:
        self._staging(nid).pop(name, None)

    def commit(self, nid: str, *, waiting: bool = False) -> bool:
        """End of the edge's pass: the staged set becomes the one agents pull. True when it
        changed (a notice is due). ``waiting`` (some deployment waits for its AI) with no set
        known since the master started: the edge is held, nothing changes."""
        board = self.edge(nid)
        staged = board.staged if board.staged is not None else board.committed
        board.staged = None
        board.held = waiting and not board.tag
        if board.held:
            return False
        if board.tag and staged == board.committed:
            return False  # the same workloads: no tag to compute (most edges, most passes)
        tag = self._tag(nid, staged)
        if tag == board.tag:
            return False
        board.committed, board.tag = staged, tag
        board.generation = time.time_ns()
        board.body = self._answer(board).model_dump_json().encode()
        return True

    def _tag(self, nid: str, workloads: dict[str, DesiredWorkload]) -> str:
        body = {name: w.model_dump(mode="json") for name, w in workloads.items()}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._tag_key(nid).encode(), canonical, hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def _answer(board: EdgeBoard) -> DesiredSet:
        return DesiredSet(
            nid=board.nid,
            tag=board.tag,
            generation=board.generation,
            workloads=[w for _, w in sorted(board.committed.items())],
        )

    def install(
        self,
        nid: str,
        *,
        tag: str,
        generation: int,
        committed: dict[str, dict[str, Any]],
        body: bytes,
    ) -> None:
        """A set another process committed (the shared board, pull/shared.py): served as is."""
        board = self.edge(nid)
        if board.tag == tag and board.generation == generation:
            return
        workloads = {k: DesiredWorkload.model_validate(w) for k, w in committed.items()}
        board.committed, board.tag, board.generation, board.body = workloads, tag, generation, body
        board.held = False

    def desired(self, nid: str) -> DesiredSet | None:
        board = self._edges.get(nid)
        if board is None or not board.tag:
            return None
        return self._answer(board)

    def answer(self, nid: str) -> tuple[str, bytes] | None:
        """The edge's set as the desired route sends it: (tag, JSON), built when it changed, so
        a thousand agents asking at once cost no serialising (None: no set yet)."""
        board = self._edges.get(nid)
        if board is None or not board.tag:
            return None
        return board.tag, board.body

    def pull_edges(self) -> int:
        """The site's pull edges: those on the board, or those the running pass plans for when
        more (a pass that brings new edges puts them on the board one by one: the first
        notices of an update to a new fleet must already be spread for the whole of it)."""
        return max(len(self._edges), self._planned)

    def plan(self, edges: int) -> None:
        """A reconcile pass is about to commit the sets of ``edges`` pull edges."""
        self._planned = edges

    def held(self, nid: str) -> bool:
        board = self._edges.get(nid)
        return board is not None and board.held

    def empty(self, nid: str) -> DesiredSet:
        """The answer for an edge no pass has anything for: run nothing."""
        board = self.edge(nid)
        if not board.tag:
            self.commit(nid)
        return DesiredSet(nid=nid, tag=board.tag, generation=board.generation, workloads=[])

    # --- what the agents report -------------------------------------------------------------
    def report(self, nid: str, observed: ObservedSet, *, at: float | None = None) -> None:
        board = self.edge(nid)
        board.observed, board.observed_at = observed, time.time() if at is None else at

    def reporting(self, within_s: float) -> int:
        """Agents that reported in the last ``within_s`` seconds."""
        since = time.time() - within_s
        return sum(1 for b in self._edges.values() if b.observed_at >= since)
