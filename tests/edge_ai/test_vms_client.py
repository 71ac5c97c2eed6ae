"""The VMS client's own behaviour against a small recording HTTP server that can answer 503,
refuse records, lack /batch, or be stopped and started again (an outage)."""

from __future__ import annotations

from edge_ai.common.vms_client import AnalysisClient, VmsClient
from tests.edge_ai.conftest import client_config, eventually
from tests.edge_ai.recorder import Recorder
from tests.helpers.env import free_port


def usage(i: int, **extra) -> dict:
    return {
        "code": "0000",
        "message": "success",
        "username": "e",
        "cpu": 1.0,
        "memory": 2.0,
        "func": "SUNNY",
        "i": i,
        **extra,
    }


async def test_posts_each_kind_to_its_route_with_the_token(tmp_path):
    server = Recorder(free_port()).start()
    client = VmsClient(
        client_config(server.url, tmp_path, token="edg_secret.token.sig"), program="t"
    )
    client.start()
    try:
        client.submit(
            "environment", {"nid": "0x01", "date": "20261122", "time": "030000", "result": "2"}
        )
        client.submit("usage", usage(1))
        client.submit("detections", {"nid": "0x01", "frames": 0})
        await eventually(lambda: len(server.records) == 3, what="three records")
        assert [k for k, _ in server.records] == ["environment", "usage", "detections"]
        assert [p for _, p, _ in server.requests] == ["/save_edgeData", "/usage", "/detections"]
        assert all(
            h.get("Authorization") == "Bearer edg_secret.token.sig" for _, _, h in server.requests
        )
        assert client.sender.stats()["delivered"] == 3
    finally:
        await client.close()
        server.stop()


async def test_outage_buffers_then_drains_in_order_through_batch(tmp_path):
    server = Recorder(free_port()).start()
    client = VmsClient(client_config(server.url, tmp_path, batch_size=7), program="t")
    client.start()
    try:
        client.submit("usage", usage(0))
        await eventually(lambda: len(server.records) == 1)
        server.stop()
        for i in range(1, 31):
            client.submit("usage", usage(i))
        await eventually(lambda: len(client.sender.buffer) == 30, what="30 buffered")
        assert not client.sender.reachable
        server = Recorder(server.port).start()
        # New records queue behind the buffered ones.
        for i in range(31, 36):
            client.submit("usage", usage(i))
        await eventually(lambda: len(server.records) == 35, what="all delivered")
        assert [d["i"] for _, d in server.records] == list(range(1, 36))
        assert any(p == "/batch" for _, p, _ in server.requests)
        assert len(client.sender.buffer) == 0 and client.sender.reachable
    finally:
        await client.close()
        server.stop()


async def test_503_is_retried_and_invalid_records_are_dropped(tmp_path):
    server = Recorder(free_port()).start()
    server.mode = "503"
    client = VmsClient(client_config(server.url, tmp_path), program="t")
    client.start()
    try:
        client.submit("usage", usage(1))
        client.submit("usage", usage(2, bad=True))
        client.submit("usage", usage(3))
        await eventually(lambda: len(client.sender.buffer) == 3)
        server.mode = "ok"
        await eventually(lambda: len(client.sender.buffer) == 0, what="buffer drained")
        assert [d["i"] for _, d in server.records] == [1, 3]
        stats = client.sender.stats()
        assert stats["rejected"] == 1 and stats["delivered"] == 2 and stats["retries"] >= 1
        # A direct post refused as invalid is dropped too, and the next one still goes out.
        client.submit("usage", usage(4, bad=True))
        client.submit("usage", usage(5))
        await eventually(lambda: len(server.records) == 3)
        assert client.sender.stats()["rejected"] == 2 and len(client.sender.buffer) == 0
    finally:
        await client.close()
        server.stop()


async def test_unauthorised_is_kept_not_dropped(tmp_path):
    server = Recorder(free_port()).start()
    server.mode = "401"
    client = VmsClient(client_config(server.url, tmp_path), program="t")
    client.start()
    try:
        client.submit("usage", usage(1))
        await eventually(lambda: server.requests and len(client.sender.buffer) == 1)
        server.mode = "ok"
        await eventually(lambda: len(server.records) == 1)
    finally:
        await client.close()
        server.stop()


async def test_a_vms_without_batch_gets_records_one_by_one(tmp_path):
    server = Recorder(free_port(), batch_route=False).start()
    server.mode = "503"
    client = VmsClient(client_config(server.url, tmp_path), program="t")
    client.start()
    try:
        for i in range(5):
            client.submit("usage", usage(i))
        await eventually(lambda: len(client.sender.buffer) == 5)
        server.mode = "ok"
        await eventually(lambda: len(server.records) == 5)
        assert [d["i"] for _, d in server.records] == list(range(5))
        paths = [p for _, p, _ in server.requests]
        assert "/batch" in paths and paths[-1] == "/usage"
    finally:
        await client.close()
        server.stop()


async def test_full_buffer_drops_the_oldest_and_counts(tmp_path):
    port = free_port()  # nothing listens yet
    client = VmsClient(
        client_config(f"http://127.0.0.1:{port}", tmp_path, buffer_max_records=10), program="t"
    )
    client.start()
    try:
        for i in range(25):
            client.submit("usage", usage(i))
        await eventually(lambda: client.sender.stats()["dropped"] == 15, what="15 dropped")
        server = Recorder(port).start()
        await eventually(lambda: len(server.records) == 10)
        assert [d["i"] for _, d in server.records] == list(range(15, 25))
        assert client.sender.stats()["dropped"] == 15
    finally:
        await client.close()
        server.stop()


async def test_buffer_survives_a_restart_of_the_program(tmp_path):
    port = free_port()
    config = client_config(f"http://127.0.0.1:{port}", tmp_path)
    first = VmsClient(config, program="t")
    first.start()
    for i in range(6):
        first.submit("usage", usage(i))
    await eventually(lambda: len(first.sender.buffer) >= 1)
    await first.close()  # records still queued in memory are written to the buffer on close

    server = Recorder(port).start()
    second = VmsClient(config, program="t")
    second.start()
    try:
        second.submit("usage", usage(6))
        await eventually(lambda: len(server.records) == 7)
        assert [d["i"] for _, d in server.records] == list(range(7))
    finally:
        await second.close()
        server.stop()


async def test_analysis_frames_are_buffered_and_sent_as_multipart(tmp_path):
    port = free_port()
    url = {"value": None}
    client = AnalysisClient(
        client_config(f"http://127.0.0.1:{port}", tmp_path), program="t", url=lambda: url["value"]
    )
    client.start()
    try:
        client.submit(b"\xff\xd8one", {"frame_index": 1})
        client.submit(b"\xff\xd8two", {"frame_index": 2})
        await eventually(
            lambda: len(client.sender.buffer) == 2, what="kept while no URL is configured"
        )
        url["value"] = f"http://127.0.0.1:{port}/analysis"
        server = Recorder(port).start()
        await eventually(lambda: len(server.uploads) == 2)
        assert [(m["frame_index"], img) for m, img in server.uploads] == [
            (1, b"\xff\xd8one"),
            (2, b"\xff\xd8two"),
        ]
    finally:
        await client.close()
        server.stop()
