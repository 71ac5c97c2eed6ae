"""Result-level fusion of two detectors' boxes by IoU (a pure function).

Rule, per class (boxes of different classes never merge):
- every pair (a from the first source, b from the second) with IoU >= ``threshold`` is a
  candidate; candidates are taken greedily by IoU, highest first, and each box joins at most one
  pair;
- a pair becomes one box with ``source: fused``: its corners are the confidence-weighted mean of
  the two boxes' corners (the plain mean when both confidences are 0), its confidence the higher
  of the two (two detectors agreeing is no reason to claim more than the surer one said);
- every box left over is kept as it was, with its own source.

The answer lists fused boxes first, then the first source's leftovers, then the second's.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.contracts.analysis import Detection, Source

DEFAULT_IOU_THRESHOLD = 0.75


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes; 0 when either has no area."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _merge(a: Detection, b: Detection) -> Detection:
    total = a.confidence + b.confidence
    wa, wb = (a.confidence / total, b.confidence / total) if total > 0 else (0.5, 0.5)
    box = [wa * pa + wb * pb for pa, pb in zip(a.box, b.box, strict=True)]
    return Detection(
        class_name=a.class_name,
        class_id=a.class_id if a.class_id is not None else b.class_id,
        confidence=max(a.confidence, b.confidence),
        box=box,
        source="fused",
    )


def fuse(
    first: Sequence[Detection],
    second: Sequence[Detection],
    *,
    threshold: float = DEFAULT_IOU_THRESHOLD,
    first_source: Source = "edge",
    second_source: Source = "server",
) -> list[Detection]:
    """Merge ``first`` and ``second`` (see the module's rule). Inputs are not modified."""
    pairs: list[tuple[float, int, int]] = []
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            if a.class_name == b.class_name:
                overlap = iou(a.box, b.box)
                if overlap >= threshold:
                    pairs.append((overlap, i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_first: set[int] = set()
    used_second: set[int] = set()
    fused: list[Detection] = []
    for _, i, j in pairs:
        if i in used_first or j in used_second:
            continue
        used_first.add(i)
        used_second.add(j)
        fused.append(_merge(first[i], second[j]))
    rest_first = [
        d.model_copy(update={"source": d.source or first_source})
        for i, d in enumerate(first)
        if i not in used_first
    ]
    rest_second = [
        d.model_copy(update={"source": d.source or second_source})
        for j, d in enumerate(second)
        if j not in used_second
    ]
    return fused + rest_first + rest_second
