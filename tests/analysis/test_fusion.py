"""Fusion by IoU on hand-made boxes (a pure function: no services)."""

from __future__ import annotations

import pytest

from services.analysis.fusion import fuse, iou
from shared.contracts.analysis import Detection


def box(
    x1: float, y1: float, x2: float, y2: float, conf: float = 0.5, cls: str = "person"
) -> Detection:
    return Detection(class_name=cls, confidence=conf, box=[x1, y1, x2, y2])


def test_iou_of_hand_made_boxes():
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching: no area in common
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert iou([0, 0, 10, 10], [0, 0, 10, 5]) == pytest.approx(0.5)  # nested: the small one's share
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # no area at all


def test_empty_inputs():
    assert fuse([], []) == []
    only_edge = fuse([box(0, 0, 10, 10)], [])
    assert [d.source for d in only_edge] == ["edge"]
    only_server = fuse([], [box(0, 0, 10, 10)])
    assert [d.source for d in only_server] == ["server"]


def test_identical_boxes_become_one_with_the_higher_confidence():
    fused = fuse([box(0, 0, 10, 10, 0.4)], [box(0, 0, 10, 10, 0.9)])
    assert len(fused) == 1
    assert (
        fused[0].source == "fused" and fused[0].confidence == 0.9 and fused[0].box == [0, 0, 10, 10]
    )


def test_merged_corners_are_the_confidence_weighted_mean():
    # IoU = 90/110 = 0.82 >= 0.75
    fused = fuse([box(0, 0, 10, 10, 0.25)], [box(1, 0, 11, 10, 0.75)])
    assert len(fused) == 1
    assert fused[0].box == pytest.approx([0.75, 0, 10.75, 10])
    zero = fuse([box(0, 0, 10, 10, 0.0)], [box(1, 0, 11, 10, 0.0)])
    assert zero[0].box == pytest.approx([0.5, 0, 10.5, 10]) and zero[0].confidence == 0.0


def test_nested_boxes_merge_only_above_the_threshold():
    big = box(0, 0, 10, 10)
    assert [d.source for d in fuse([big], [box(0, 0, 10, 8)])] == ["fused"]  # IoU 0.8
    assert [d.source for d in fuse([big], [box(0, 0, 10, 7)])] == ["edge", "server"]  # IoU 0.7
    assert [d.source for d in fuse([big], [box(0, 0, 10, 7)], threshold=0.7)] == [
        "fused"
    ]  # at the threshold


def test_touching_and_disjoint_boxes_are_kept_apart():
    fused = fuse([box(0, 0, 10, 10)], [box(10, 0, 20, 10), box(30, 30, 40, 40)])
    assert [d.source for d in fused] == ["edge", "server", "server"]


def test_classes_never_merge():
    fused = fuse([box(0, 0, 10, 10, cls="person")], [box(0, 0, 10, 10, cls="car")])
    assert sorted((d.class_name, d.source) for d in fused) == [
        ("car", "server"),
        ("person", "edge"),
    ]


def test_each_box_joins_one_pair_the_best_overlap_first():
    edge = [box(0, 0, 10, 10, 0.6)]
    server = [box(0, 0, 10, 9, 0.7), box(0, 0, 10, 10, 0.8)]  # IoU 0.9 and 1.0
    fused = fuse(edge, server)
    assert [d.source for d in fused] == ["fused", "server"]
    assert fused[0].confidence == 0.8 and fused[1].box == [0, 0, 10, 9]


def test_inputs_are_not_modified():
    edge = [box(0, 0, 10, 10)]
    fuse(edge, [box(50, 50, 60, 60)])
    assert edge[0].source is None
