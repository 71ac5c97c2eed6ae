"""``<workdir>/state.json``: the desired set and the pids of the children, written atomically."""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edge_ai.agent.schemas import WorkloadSpec


@dataclass
class ChildRecord:
    name: str
    version: str
    pid: int
    start_time: float | None


@dataclass
class SavedState:
    workloads: list[WorkloadSpec] = field(default_factory=list)
    children: list[ChildRecord] = field(default_factory=list)
    seq: int = 0  # when the snapshot was taken; not written


class StateStore:
    def __init__(self, path: Path):
        self.path = path
        # Saves run in threads: one that was overtaken must not land after a newer snapshot.
        self._lock = threading.Lock()
        self._last_seq = -1

    def load(self) -> SavedState:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return SavedState()
        return SavedState(
            workloads=[WorkloadSpec.model_validate(w) for w in raw.get("workloads", [])],
            children=[ChildRecord(**c) for c in raw.get("children", [])],
        )

    def save(self, node: str, state: SavedState) -> None:
        """Write to a temporary file, fsync, rename: a crash leaves the old file or the new one,
        never half. A snapshot older than the last one written is dropped."""
        with self._lock:
            if state.seq < self._last_seq:
                return
            self._write(node, state)
            self._last_seq = state.seq

    def _write(self, node: str, state: SavedState) -> None:
        body = {
            "node": node,
            "workloads": [w.model_dump(mode="json") for w in state.workloads],
            "children": [c.__dict__ for c in state.children],
        }
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        # 0600: a workload's env may carry camera credentials.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
