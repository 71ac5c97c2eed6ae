"""A PostgreSQL server of the test's own (initdb in a temporary folder, a free port), so that a
test can restart it without disturbing anyone else on the shared server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers.env import free_port

BIN = Path(shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl").parent


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and the server refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class PrivatePostgres:
    def __init__(self) -> None:
        # Under /tmp itself: the server's user must reach it (pytest's tmp_path is root's alone).
        self.root = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            _as_postgres([str(BIN / args[0]), *args[1:]]),
            capture_output=True,
            timeout=60,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        return self

    def restart(self) -> None:
        """A fast shutdown (every connection dropped, in-flight transactions rolled back), then
        up."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "restart"
        )

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
