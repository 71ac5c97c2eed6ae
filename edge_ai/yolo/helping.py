"""Hot hand-off: the running worker also analyses the cameras of the edges it helps.

While the optimizer has this edge help an overloaded one, the worker reads the helped edge's camera
with the model it already has loaded and posts one summary a second under the helped node's nid,
marked ``analysed_by`` = its own nid (the VMS takes these only while the optimizer's hand-off
names this edge). No new process: the hand-off is in effect as soon as the live settings change.

Two inputs, both re-read while the worker runs:

- the live file's ``help_for``: the nids to help (not secret; the master adds it to the helper
  workload's live params). A nid that leaves the list stops at once (hand-back).
- the live secrets file (``EDGE_LIVE_SECRETS_FILE``, JSON ``edge_common.vocabulary.LiveSecrets``:
  helped nid -> camera URL, mode 0600): each helped camera's URL with its credentials. The edge
  agent writes it beside the live file; on Kubernetes it is a mounted Secret, on Docker a file
  copied into the container. Its content is never logged; URLs appear in logs only redacted.

A nid in ``help_for`` whose URL has not arrived yet (a mounted Secret refreshes a little after the
ConfigMap) waits for it: the secrets file is looked at again on every check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_ai.common.vms_client import VmsClient
from edge_ai.yolo.summary import Window, summary_record
from edge_common.compat import to_thread
from edge_common.vocabulary import Param

log = logging.getLogger("edge_ai.yolo.helping")

SOURCES_KEY = Param.HELP_SOURCES


class LiveSecrets:
    """The live secrets file: helped nid -> camera URL. Cheap when unchanged (one stat)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self.sources: dict[str, str] = {}

    def refresh(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self._stamp is not None:
                self._stamp, self.sources = None, {}
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp:
            return
        try:
            body = json.loads(self.path.read_text())
            sources = body.get(SOURCES_KEY) or {}
            if not isinstance(sources, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
            ):
                raise ValueError(f"{SOURCES_KEY} must map nids to URLs")
        except (OSError, ValueError, AttributeError) as exc:
            # Not remembered: a file caught half-written is read again at the next check.
            log.warning(
                "live secrets file %s unreadable, ignored: %s", self.path, type(exc).__name__
            )
            return
        self._stamp = stamp
        self.sources = sources


@dataclass
class HelpedCamera:
    """One helped edge's camera, read and analysed by this worker."""

    nid: str
    url: str
    window: Window = field(default_factory=lambda: Window(started=time.time()))
    source: Any = None
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failures: int = 0
    failing_since: float | None = None
    problem: str = ""
    retry_at: float = 0.0


class Helping:
    """The helped cameras: started and stopped by ``sync``, summarised every second."""

    def __init__(
        self,
        *,
        own_nid: str,
        rate: float,
        conf: float,
        failure_report_s: float,
        detect: Callable[[Any], tuple[list[Any], float]],
        vms: VmsClient,
        secrets: LiveSecrets,
        record_fields: dict[str, Any],
        max_detections: int,
    ):
        self.own_nid = own_nid
        self.rate = rate
        self.conf = conf
        self.failure_report_s = failure_report_s
        self.detect = detect
        self.vms = vms
        self.secrets = secrets
        self.record_fields = record_fields  # model, model_version
        self.max_detections = max_detections
        self.cameras: dict[str, HelpedCamera] = {}
        self._ending: set[asyncio.Task[None]] = set()  # dropped cameras finishing their last read

    @property
    def nids(self) -> list[str]:
        return sorted(self.cameras)

    def sync(self, wanted: tuple[str, ...]) -> None:
        """Help exactly ``wanted`` (those whose camera URL is known); stop the others."""
        if wanted or self.cameras:
            self.secrets.refresh()
        for nid in [n for n in self.cameras if n not in wanted]:
            self._stop(nid, "handed back")
        for nid in wanted:
            url = self.secrets.sources.get(nid)
            current = self.cameras.get(nid)
            if current is not None and current.url == url:
                continue
            if current is not None:
                self._stop(nid, "camera URL changed")
            if not url:
                continue  # its URL has not arrived yet: looked for again at the next check
            from edge_ai.common.frames import describe

            camera = self.cameras[nid] = HelpedCamera(nid, url)
            camera.task = asyncio.create_task(self._frames(camera), name=f"help-{nid}")
            log.info(
                "helping %s: reading %s in this process, posting under %s",
                nid,
                describe(url),
                nid,
            )

    def _stop(self, nid: str, why: str) -> None:
        """No more summaries for ``nid`` from now; its loop ends after the read in flight (the
        camera is closed by the loop, never under a read)."""
        camera = self.cameras.pop(nid)
        camera.stop.set()
        if camera.task is not None:
            self._ending.add(camera.task)
            camera.task.add_done_callback(self._ending.discard)
        log.info("no longer helping %s (%s)", nid, why)

    async def _frames(self, camera: HelpedCamera) -> None:
        """Frames at the worker's rate on the wall-clock grid, the first one at once, until
        stopped."""
        period = 1.0 / self.rate
        try:
            while not camera.stop.is_set():
                try:
                    await self._step(camera)
                except Exception:  # a bad frame must not end the hand-off; the next one is tried
                    log.exception("helping %s: frame failed", camera.nid)
                now = time.time()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        camera.stop.wait(), (int(now / period) + 1) * period - now
                    )
        finally:
            if camera.source is not None:
                camera.source.close()
                camera.source = None

    async def _step(self, camera: HelpedCamera) -> None:
        from edge_ai.common.frames import FrameUnavailable, open_source

        if time.monotonic() < camera.retry_at:
            return
        try:
            if camera.source is None:
                camera.source = await to_thread(open_source, camera.url)
            frame = await to_thread(camera.source.read)
        except FrameUnavailable as exc:
            if camera.failures == 0:
                camera.failing_since = time.monotonic()
            camera.problem = str(exc)  # FrameUnavailable never carries credentials
            camera.failures += 1
            delay = min(30.0, 2.0 ** min(camera.failures, 5))
            camera.retry_at = time.monotonic() + delay
            log.warning("helping %s: no frame (%s); retrying in %.0fs", camera.nid, exc, delay)
            if camera.source is not None:
                await to_thread(camera.source.close)
                camera.source = None
            return
        camera.failures, camera.failing_since = 0, None
        detections, elapsed_ms = await to_thread(self.detect, frame)
        above = [d for d in detections if d.confidence >= self.conf]
        camera.window.add(above, len(detections) - len(above), elapsed_ms)

    def summarise(self, now: float) -> None:
        """One summary a second per helped camera, under its nid, marked as this edge's work."""
        for camera in self.cameras.values():
            window, camera.window = camera.window, Window(started=now)
            record = summary_record(
                window,
                ended=now,
                node_id=camera.nid,
                conf_threshold=self.conf,
                max_detections=self.max_detections,
                **self.record_fields,
            )
            record["profile"] = "helper"
            record["analysed_by"] = self.own_nid
            since = camera.failing_since
            if since is not None and time.monotonic() - since >= self.failure_report_s:
                record["source_unavailable"] = camera.problem[:300]
            self.vms.submit("detections", record)

    async def aclose(self) -> None:
        for nid in list(self.cameras):
            self._stop(nid, "stopping")
        await asyncio.gather(*self._ending, return_exceptions=True)
