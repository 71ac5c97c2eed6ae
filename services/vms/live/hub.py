"""Live view frames, in memory: the latest JPEG each edge posted, with a sequence number viewers
wait on. One feed per edge, whoever watches: several viewers (through the console) share what the
edge sends once. Nothing is stored: a frame is replaced by the next."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from shared.contracts.live_view import LiveFeedState
from shared.deps import from_app_state


@dataclass
class Feed:
    seq: int = 0  # frames received since this VMS started
    jpeg: bytes = b""
    edge_seq: int = 0  # the edge's own counter (drawn on the frame)
    at: float = 0.0  # time.time() of the latest frame
    bytes: int = 0
    problem: str = ""
    problem_at: float = 0.0
    new: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        old, self.new = self.new, asyncio.Event()
        old.set()

    def state(self) -> LiveFeedState:
        return LiveFeedState(
            frames=self.seq,
            bytes=self.bytes,
            edge_seq=self.edge_seq,
            last_frame_at=self.at or None,
            problem=self.problem or None,
            problem_at=self.problem_at or None,
        )


class LiveHub:
    def __init__(self) -> None:
        self.feeds: dict[str, Feed] = {}

    def feed(self, nid: str) -> Feed:
        return self.feeds.setdefault(nid, Feed())

    def put_frame(self, nid: str, jpeg: bytes, edge_seq: int) -> int:
        f = self.feed(nid)
        f.seq += 1
        f.jpeg, f.edge_seq, f.at = jpeg, edge_seq, time.time()
        f.bytes += len(jpeg)
        f.problem = ""
        f.changed()
        return f.seq

    def put_problem(self, nid: str, detail: str) -> None:
        f = self.feed(nid)
        f.problem, f.problem_at = detail, time.time()
        f.changed()

    async def next_frame(self, nid: str, after: int, wait_s: float) -> Feed | None:
        """The feed once it holds a frame newer than ``after`` (None: none came within
        ``wait_s``)."""
        f = self.feed(nid)
        deadline = time.monotonic() + wait_s
        while f.seq <= after:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(f.new.wait(), left)
            except TimeoutError:
                return None
        return f


LiveHubDep = Annotated[LiveHub, Depends(from_app_state("live", LiveHub))]
