"""The per-second summary the worker posts to ``POST /detections``.

``counts`` and ``detections`` describe the latest frame of the second (the scene now; a sum over
frames would count the same bus five times); ``below_threshold`` and ``frames_sent_up`` add up
over every frame of the second; ``inference_ms`` summarises each frame's detection time.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edge_ai.common.timefmt import utc_stamp
from edge_ai.yolo.model import Detection


@dataclass
class Window:
    started: float
    frames: int = 0
    inference_ms: list[float] = field(default_factory=list)
    latest: list[Detection] = field(default_factory=list)
    below_threshold: int = 0
    frames_sent_up: int = 0
    frames_skipped: int = 0  # read but not analysed here (helped, local analysis paused)

    def add(self, above: list[Detection], below: int, elapsed_ms: float) -> None:
        self.frames += 1
        self.inference_ms.append(elapsed_ms)
        self.latest = above
        self.below_threshold += below


def summary_record(
    window: Window,
    *,
    ended: float,
    node_id: str,
    model: str,
    model_version: str,
    conf_threshold: float,
    max_detections: int,
) -> dict[str, Any]:
    seconds = max(ended - window.started, 1e-6)
    times = window.inference_ms
    detections = sorted(window.latest, key=lambda d: d.confidence, reverse=True)[:max_detections]
    return {
        "nid": node_id,
        "ts": utc_stamp(datetime.fromtimestamp(ended, timezone.utc)),
        "model": model,
        "model_version": model_version,
        "fps": round(window.frames / seconds, 2),
        "frames": window.frames,
        "inference_ms": {
            # null, not 0, for a second without frames: a zero would drag averages down.
            "mean": round(statistics.fmean(times), 1) if times else None,
            "p50": round(statistics.median(times), 1) if times else None,
            "max": round(max(times), 1) if times else None,
        },
        "conf_threshold": conf_threshold,
        "counts": dict(Counter(d.class_name for d in window.latest)),
        "detections": [d.as_json() for d in detections],
        "below_threshold": window.below_threshold,
        "frames_sent_up": window.frames_sent_up,
    }
