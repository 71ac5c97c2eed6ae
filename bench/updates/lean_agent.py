"""A lean simulated pull agent for the fan-out bench: MQTT 3.1.1 and HTTP/1.1 spoken on raw asyncio
streams, the way wrk speaks HTTP, so that thousands of agents in one bench process cost little CPU.

At 5,000 agents the bench's aiomqtt and aiohttp agents kept their process at a full core (1.6 ms
of CPU an agent) while the master was half idle: the figures measured the load generator. These
agents do what ``edge_ai.agent.puller`` does on the wire and nothing else: one MQTT connection
subscribed QoS 1 to ``edge/<nid>/desired`` (each PUBLISH acknowledged), then, on the notice and
after a random share of its ``spread_s``, a connection of its own to the master:
``GET /edges/me/desired`` and ``GET /artifacts/{digest}`` with its token, bodies read whole
(``Content-Length``). A protocol error or a refusal becomes the agent's ``error``, which the bench
counts and shows; nothing is skipped silently."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol

import orjson

from shared.contracts.updates import notice_topic


class LeanAgent(Protocol):
    nid: str
    token: str
    connected: asyncio.Event
    notice_sent_at: float | None
    spread_s: float | None
    digest: str | None
    notice_at: float | None
    asked_at: float | None
    desired_at: float | None
    etag: str | None
    artifact_at: float | None
    error: str | None


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _packet(kind: int, body: bytes) -> bytes:
    """A control packet: the fixed header (type and flags, remaining length) and its body."""
    length, size = bytearray(), len(body)
    while True:
        byte, size = size % 128, size // 128
        length.append(byte | (0x80 if size else 0))
        if not size:
            return bytes([kind]) + bytes(length) + body


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    size, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return first, await reader.readexactly(size)


class MqttSubscriber:
    """One MQTT connection subscribed QoS 1 to one topic (clean session, no keep-alive)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, client_id: str, topic: str) -> MqttSubscriber:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # CONNECT: protocol "MQTT" level 4, clean session, keep-alive 0 (off).
        writer.write(_packet(0x10, _utf8("MQTT") + b"\x04\x02\x00\x00" + _utf8(client_id)))
        kind, body = await _read_packet(reader)
        if kind >> 4 != 2 or body[1] != 0:
            raise ConnectionError(f"CONNACK refused: {kind:#x} {body!r}")
        writer.write(_packet(0x82, b"\x00\x01" + _utf8(topic) + b"\x01"))  # SUBSCRIBE, QoS 1
        kind, body = await _read_packet(reader)
        if kind >> 4 != 9 or body[2] not in (0, 1):
            raise ConnectionError(f"SUBACK refused: {kind:#x} {body!r}")
        return cls(reader, writer)

    async def next_live(self) -> bytes:
        """The payload of the next PUBLISH sent live (a retained one, sent on subscribing, is
        acknowledged and passed by), acknowledged (PUBACK) when QoS 1."""
        while True:
            kind, body = await _read_packet(self.reader)
            if kind >> 4 != 3:
                continue
            qos, retained = (kind >> 1) & 3, kind & 1
            topic_len = int.from_bytes(body[:2], "big")
            at = 2 + topic_len
            if qos:
                self.writer.write(_packet(0x40, body[at : at + 2]))
                at += 2
            if not retained:
                return body[at:]

    def close(self) -> None:
        self.writer.write(b"\xe0\x00")  # DISCONNECT
        self.writer.close()


async def http_get(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    path: str,
    headers: bytes,
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One GET on a kept-alive connection: status, headers (lower-case names), the whole body."""
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: master\r\n" + headers + b"\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
    if b"content-length" not in fields:
        raise ConnectionError(f"GET {path}: no Content-Length in {head!r}")
    return status, fields, await reader.readexactly(int(fields[b"content-length"]))


async def run_lean_agent(
    a: LeanAgent, broker_port: int, master_port: int, connect_gate: asyncio.Semaphore
) -> None:
    """Connect and subscribe (``a.connected`` set), wait for the notice, fetch as the agent does."""
    async with connect_gate:
        mqtt = await MqttSubscriber.connect(broker_port, f"agent-{a.nid}", notice_topic(a.nid))
    a.connected.set()
    try:
        payload = await mqtt.next_live()
        a.notice_at = time.time()
        notice = orjson.loads(payload)
        a.notice_sent_at, a.spread_s = notice["sent_at"], notice["spread_s"]
        await asyncio.sleep(random.uniform(0.0, notice["spread_s"]))
        a.asked_at = time.time()
        headers = f"Authorization: Bearer {a.token}\r\n".encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", master_port)
        try:
            status, fields, body = await http_get(reader, writer, "/edges/me/desired", headers)
            if status != 200:
                raise ConnectionError(f"desired set: HTTP {status}: {body[:200]!r}")
            a.desired_at = time.time()
            a.etag = fields.get(b"etag", b"").decode() or None
            digest = a.digest = orjson.loads(body)["workloads"][0]["package_digest"]
            status, _, body = await http_get(reader, writer, f"/artifacts/{digest}", headers)
            if status != 200:
                raise ConnectionError(f"package: HTTP {status}")
            a.artifact_at = time.time()
        finally:
            writer.close()
    except (OSError, asyncio.IncompleteReadError, KeyError, IndexError, ValueError) as exc:
        a.error = f"{type(exc).__name__}: {exc}"
    finally:
        mqtt.close()
