"""A private Mosquitto with the shipped configuration (deploy/mosquitto.conf and .acl): only the
port, the data folder and the password file move. Users: ``master`` and one per node id."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.helpers.env import free_port
from tests.helpers.processes import REPO, Proc

MOSQUITTO = "/usr/sbin/mosquitto"
MASTER_PASSWORD = "master-test-password"


def agent_password(nid: str) -> str:
    return f"agent-{nid}-password"


class Broker:
    def __init__(self, tmp_path: Path, nids: tuple[str, ...] = ("0x01", "0x02")):
        self.dir = tmp_path / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        passwd = self.dir / "passwd"
        passwd.touch(mode=0o600)
        for user, password in [("master", MASTER_PASSWORD)] + [
            (nid, agent_password(nid)) for nid in nids
        ]:
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwd), user, password],
                check=True,
                capture_output=True,
            )
        # The shipped TLS listener too, with certificates of a CA made here (edgectl tls).
        from edgectl.tls import make_ca, make_cert

        self.tls_port = free_port()
        certs = self.dir / "certs"
        self.ca = make_ca(certs)
        make_cert(certs, ["127.0.0.1", "localhost"], certs, name="mosquitto")
        conf = (REPO / "deploy" / "mosquitto.conf").read_text()
        conf = (
            conf.replace("listener 1883", f"listener {self.port} 127.0.0.1")
            .replace("listener 8883", f"listener {self.tls_port} 127.0.0.1")
            .replace("/mosquitto/certs/", f"{certs}/")
            .replace("/mosquitto/data/", f"{self.dir}/")
            .replace("/mosquitto/auth/passwd", str(passwd))
            .replace("/mosquitto/config/mosquitto.acl", str(REPO / "deploy" / "mosquitto.acl"))
            # Root runs the tests: the broker keeps that user to read the test's private files.
            .replace("log_dest stdout", "log_dest stdout\nautosave_interval 1\nuser root")
        )
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(conf)
        self.proc: Proc | None = None
        self._runs = 0

    def url(self, user: str, password: str) -> str:
        return f"mqtt://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def master_url(self) -> str:
        return self.url("master", MASTER_PASSWORD)

    def start(self) -> Broker:
        self._runs += 1
        self.proc = Proc(
            [MOSQUITTO, "-c", str(self.conf)],
            env={"PATH": "/usr/bin:/bin"},
            log_path=self.dir / f"mosquitto-{self._runs}.log",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert self.proc.alive(), self.proc.log_text()
                time.sleep(0.05)
        raise TimeoutError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
