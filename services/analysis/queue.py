"""The job queue: a Redis stream with one consumer group of workers.

Why a Redis stream: an entry a worker has read stays in the group's pending list until the worker
acknowledges it, so a job held by a worker that died is still there; another worker takes it
over (XAUTOCLAIM) once it has been idle for the lease. Redis is already the cache and the rate
limiter's store, so the queue adds no moving part; Postgres ``SKIP LOCKED`` would put every image
through the database, and the task-queue libraries add a broker protocol for what four commands do.

Keys (all under the service's prefix):
- ``jobs``: the stream; an entry holds the job id, the image bytes and the job's metadata;
- ``job:{id}``: "queued" while the job exists and has no result (404 for unknown ids);
- ``owner:{id}``: who posted the job (``edge:{nid}`` for an edge), as long as the job or its
  result lives: an edge reads back only its own jobs;
- ``result:{id}``: the job's answer (JSON), written once (SET NX) whoever finishes it first;
- ``done:{id}``: a list that gets one element when the result is written (a synchronous caller
  waits on it with BLPOP: an event, no polling);
- ``vms-outbox``: results of frames that came from the VMS inbox, for the gateway to post back.

At-least-once delivery with an idempotent result write: a job may be analysed twice (a worker
that was slow rather than dead), but only the first result is kept, announced and counted.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

GROUP = "workers"

# One stream entry as redis-py returns it (bytes, the clients do not decode): id and fields.
StreamEntry = tuple[bytes, dict[bytes, bytes]]


def text(value: object) -> str:
    """A value from Redis (bytes: the clients do not decode) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_entries(entries: Any) -> list[StreamEntry]:
    """The entries of an XREAD/XREADGROUP/XAUTOCLAIM reply, typed (redis-py types them loosely).

    An entry deleted while pending comes back with no fields; it is kept with an empty dict.
    """
    return [(bytes(entry_id), dict(fields or {})) for entry_id, fields in entries]


def first_stream(reply: Any) -> list[StreamEntry]:
    """The entries of the one stream an XREAD/XREADGROUP reply holds ([] when it timed out)."""
    return stream_entries(reply[0][1]) if reply else []


# KEYS: stream, job key, owner key; ARGV: max jobs, job id, image, meta json, job key ttl, owner.
SUBMIT_SCRIPT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'id', ARGV[2], 'image', ARGV[3], 'meta', ARGV[4])
redis.call('SET', KEYS[2], 'queued', 'EX', tonumber(ARGV[5]))
redis.call('SET', KEYS[3], ARGV[6], 'EX', tonumber(ARGV[5]))
return 1
"""

# KEYS: result, done list, job key, stream, cache key ('' none), cache index, vms outbox, owner.
# ARGV: result json, result ttl, entry id, group, cache ttl, cache max, now, vms payload ('' none).
COMPLETE_SCRIPT = """
local written = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  written = 1
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
  redis.call('DEL', KEYS[3])
  if KEYS[8] then redis.call('EXPIRE', KEYS[8], tonumber(ARGV[2])) end
  if KEYS[5] ~= '' then
    redis.call('SET', KEYS[5], ARGV[1], 'EX', tonumber(ARGV[5]))
    redis.call('ZADD', KEYS[6], tonumber(ARGV[7]), KEYS[5])
    local over = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[6])
    if over > 0 then
      local old = redis.call('ZPOPMIN', KEYS[6], over)
      for i = 1, #old, 2 do redis.call('DEL', old[i]) end
    end
  end
  if ARGV[8] ~= '' then redis.call('RPUSH', KEYS[7], ARGV[8]) end
end
redis.call('XACK', KEYS[4], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[4], ARGV[3])
return written
"""


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def cache_index(self) -> str:
        return f"{self.prefix}:cache-index"

    @property
    def vms_outbox(self) -> str:
        return f"{self.prefix}:vms-outbox"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def result(self, job_id: str) -> str:
        return f"{self.prefix}:result:{job_id}"

    def owner(self, job_id: str) -> str:
        return f"{self.prefix}:owner:{job_id}"

    def done(self, job_id: str) -> str:
        return f"{self.prefix}:done:{job_id}"


@dataclass
class JobMeta:
    """What travels with the image in the stream entry."""

    image_sha256: str
    submitted_at: float = field(default_factory=time.time)
    nid: str | None = None
    camera_time: str | None = None  # ISO 8601, as sent
    mode: str | None = None
    edge_detections: list[dict[str, Any]] = field(default_factory=list)
    vms_request_id: int | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobMeta:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def new_job_id() -> str:
    return uuid.uuid4().hex
