"""`edgectl up` keeps its processes running: a child that exits is started again after a backoff
(0.5 s, then doubling up to 30 s); one that keeps failing (more than ``max_failures`` exits within
``window_s``) stops the stack, naming it and its log."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgectl.stack.children import Child

log = logging.getLogger("edgectl.up")


@dataclass
class Restarts:
    """One child's recent exits and when it starts again."""

    exits: list[float] = field(default_factory=list)  # monotonic times, within the window
    due: float | None = None  # when it starts again (None: running)
    total: int = 0  # restarts since `edgectl up` began
    last_exit: int | None = None
    last_at: str = ""  # wall clock of the last restart, HH:MM:SS


class Supervisor:
    """Watches ``children()`` from a thread of its own; ``failure`` says why the stack must stop
    (a child that keeps failing), ``notes()`` what was restarted (for the view)."""

    def __init__(
        self,
        children: Callable[[], list[Child]],
        *,
        first_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        max_failures: int = 5,
        window_s: float = 120.0,
        every_s: float = 0.25,
    ) -> None:
        self.children = children
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.max_failures = max_failures
        self.window_s = window_s
        self.every_s = every_s
        self.failure: str | None = None
        self.restarts: dict[str, Restarts] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Before the stack stops its children: nothing is restarted any more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            with self._lock:
                self.check(time.monotonic())
            if self.failure is not None:
                return

    def delay(self, failures: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, failures - 1))

    def check(self, now: float) -> None:
        """One pass: note the exits, start again those whose backoff is over."""
        for child in self.children():
            state = self.restarts.setdefault(child.name, Restarts())
            if state.due is None:
                if child.alive():
                    continue
                state.last_exit = child.exit_code()
                state.exits = [t for t in state.exits if now - t < self.window_s] + [now]
                if len(state.exits) > self.max_failures:
                    self.failure = (
                        f"{child.name} keeps failing: it exited {len(state.exits)} times within "
                        f"{self.window_s:.0f} s (last exit {state.last_exit}); its log: "
                        f"{child.log_path}"
                    )
                    log.error("%s", self.failure)
                    return
                wait = self.delay(len(state.exits))
                state.due = now + wait
                log.warning(
                    "%s exited (exit %s); starting it again in %.1f s (log %s)",
                    child.name,
                    state.last_exit,
                    wait,
                    child.log_path,
                )
            elif now >= state.due:
                self._restart(child, state)

    def _restart(self, child: Child, state: Restarts) -> None:
        if child.popen is not None:
            # What the old process left in its group (an agent's AIs) goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.popen.pid, signal.SIGKILL)
        child.start()
        state.due = None
        state.total += 1
        state.last_at = time.strftime("%H:%M:%S")
        log.warning("%s started again (restart %d)", child.name, state.total)

    def notes(self) -> list[str]:
        """One line per child that was restarted (or waits to be)."""
        with self._lock:
            lines = []
            for name, state in self.restarts.items():
                if state.due is not None:
                    wait = max(0.0, state.due - time.monotonic())
                    lines.append(
                        f"{name} exited (exit {state.last_exit}): starting again in {wait:.0f} s"
                    )
                elif state.total:
                    lines.append(
                        f"{name} restarted {state.total} time(s), last at {state.last_at} "
                        f"(exit {state.last_exit})"
                    )
            return lines
