"""A bounded, persistent FIFO of records that could not be delivered yet (one sqlite file).

sqlite because it is in Python's standard library, survives a power cut mid-write (WAL,
synchronous=NORMAL loses at most the last transaction, never corrupts the file) and lets us
drop the oldest rows and count them in one transaction. Every method blocks briefly on disk:
async callers go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BufferedRecord:
    id: int
    kind: str
    data: dict[str, Any]
    blob: bytes | None = None


class DiskBuffer:
    """Oldest first; when full, ``append`` drops the oldest and adds them to ``dropped``."""

    def __init__(self, path: Path, *, max_records: int):
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.path = Path(path)
        self.max_records = max_records
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records (id INTEGER "
            "PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
            "data TEXT NOT NULL, blob BLOB)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        self._db.execute("INSERT OR IGNORE INTO counters VALUES ('dropped', 0)")
        self._count = self._db.execute("SELECT count(*) FROM records").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    @property
    def dropped(self) -> int:
        """Records dropped because the buffer was full, over the buffer file's whole life."""
        with self._lock:
            return self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[
                0
            ]

    def append(self, kind: str, data: dict[str, Any], blob: bytes | None = None) -> int:
        """Store one record; returns how many old records were dropped to make room."""
        return self.extend([(kind, data, blob)])

    def extend(self, items: list[tuple[str, dict[str, Any], bytes | None]]) -> int:
        if not items:
            return 0
        rows = [(kind, json.dumps(data, separators=(",", ":")), blob) for kind, data, blob in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO records (kind, data, blob) VALUES (?, ?, ?)", rows
                )
                excess = self._count + len(rows) - self.max_records
                dropped = 0
                if excess > 0:
                    dropped = self._db.execute(
                        "DELETE FROM records WHERE id IN (SELECT "
                        "id FROM records ORDER BY id LIMIT ?)",
                        (excess,),
                    ).rowcount
                    self._db.execute(
                        "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += len(rows) - dropped
            return dropped

    def peek(self, limit: int) -> list[BufferedRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, data, blob FROM records ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [BufferedRecord(id=r[0], kind=r[1], data=json.loads(r[2]), blob=r[3]) for r in rows]

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._db.executemany(
                    "DELETE FROM records WHERE id = ?", [(i,) for i in ids]
                ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count -= deleted

    def close(self) -> None:
        with self._lock:
            self._db.close()
