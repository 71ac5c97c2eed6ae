"""The on-disk buffer: oldest first, bounded (drops the oldest and counts), survives reopening."""

from __future__ import annotations

from edge_ai.common.buffer import DiskBuffer


def test_fifo_bounded_and_persistent(tmp_path):
    path = tmp_path / "b.sqlite"
    buf = DiskBuffer(path, max_records=5)
    assert buf.append("usage", {"i": 0}) == 0
    assert buf.extend([("usage", {"i": i}, None) for i in range(1, 8)]) == 3
    assert len(buf) == 5 and buf.dropped == 3
    assert [r.data["i"] for r in buf.peek(10)] == [3, 4, 5, 6, 7]
    first_two = [r.id for r in buf.peek(2)]
    buf.remove(first_two)
    buf.append("frame", {"i": 8}, b"\xff\xd8jpeg")
    buf.close()

    reopened = DiskBuffer(path, max_records=5)
    records = reopened.peek(10)
    assert [r.data["i"] for r in records] == [5, 6, 7, 8]
    assert records[-1].kind == "frame" and records[-1].blob == b"\xff\xd8jpeg"
    assert reopened.dropped == 3 and len(reopened) == 4
    reopened.close()
