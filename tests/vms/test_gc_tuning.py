"""The collector setting a VMS process applies once started (VMS_GC_YOUNG_THRESHOLD)."""

from __future__ import annotations

import gc

from services.vms.app import tune_gc


def test_the_start_is_frozen_and_the_young_generation_collected_less_often():
    before = gc.get_threshold()
    try:
        tune_gc(0)  # 0: Python's collector as it is
        assert gc.get_threshold() == before
        frozen = gc.get_freeze_count()
        kept = [[] for _ in range(10)]  # tracked objects made before the start ends
        tune_gc(50_000)
        assert gc.get_threshold() == (50_000, before[1], before[2])
        assert gc.get_freeze_count() >= frozen + 10 and kept
    finally:
        gc.set_threshold(*before)
