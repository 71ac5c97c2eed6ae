"""The MQTT broker `edgectl up` starts for update notices when EDGE_MQTT_URL is not set.

It is ``amqtt`` (a broker in pure Python, a dependency of the platform) run as a child process
(with ``edgectl up --tls``: Mosquitto when installed, with a TLS listener only):
``python -m edgectl.stack.embedded_mqtt PORT``. Without amqtt, a Mosquitto binary found on the
machine (``mosquitto`` on PATH, or /usr/sbin/mosquitto) is used instead. Either listens on
127.0.0.1 only and accepts any client without a password: the demo's master and agents are on
this machine. A broker facing real edges is Mosquitto with deploy/mosquitto.conf (users and ACL).
Nothing is kept across restarts: the master publishes every edge's notice again after its first
pass, and the pull agents ask for their desired set when they start.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib.util
import shutil
import socket
import sys
import time
from pathlib import Path

from edgectl.stack.children import Child

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class EmbeddedMqttError(RuntimeError):
    """No embedded broker is available, or it did not start."""


def _mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if Path(p).is_file()), None)


class EmbeddedMqtt:
    def __init__(
        self,
        data_dir: Path,
        port: int,
        env: dict[str, str],
        log_path: Path,
        *,
        tls: tuple[Path, Path, Path] | None = None,
    ):
        """``tls``: (CA, certificate chain, key): MQTT over TLS only (mqtts://), Mosquitto
        preferred."""
        self.data_dir = data_dir
        self.port = port
        self.tls = tls
        self.url = f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{port}"
        if tls is not None and (mosquitto := _mosquitto()) is not None:
            self.kind = "mosquitto"
            args = [mosquitto, "-c", str(data_dir / "mosquitto.conf")]
        elif importlib.util.find_spec("amqtt") is not None:
            self.kind = "amqtt"
            args = [sys.executable, "-m", "edgectl.stack.embedded_mqtt", str(port)]
            if tls is not None:
                args += [str(tls[1]), str(tls[2])]
        elif (mosquitto := _mosquitto()) is not None:
            self.kind = "amqtt"
            args = [sys.executable, "-m", "edgectl.stack.embedded_mqtt", str(port)]
        elif (mosquitto := _mosquitto()) is not None:
            self.kind = "mosquitto"
            args = [mosquitto, "-c", str(data_dir / "mosquitto.conf")]
        else:
            raise EmbeddedMqttError(
                "no embedded MQTT broker: install amqtt (pip install -e .) or mosquitto, "
                "or set EDGE_MQTT_URL"
            )
        self.child = Child("mqtt", args, env, log_path)

    def start(self, timeout: float = 20) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "mosquitto":
            conf = (
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "log_dest stdout\n"
            )
            if self.tls is not None:
                ca, cert, key = self.tls
                # Started by root, mosquitto would switch to its own user, who cannot read the
                # stack's key (mode 0600): it stays the user who runs the stack.
                user = getpass.getuser()
                conf += f"user {user}\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
            (self.data_dir / "mosquitto.conf").write_text(conf)
        self.child.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                tail = self.child.log_path.read_text(errors="replace")[-2000:]
                raise EmbeddedMqttError(f"the embedded MQTT broker ({self.kind}) exited:\n{tail}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise EmbeddedMqttError(f"the embedded MQTT broker did not listen on {self.port}")

    def alive(self) -> bool:
        return self.child.alive()

    def stop(self) -> None:
        from edgectl.stack.children import stop_all

        stop_all([self.child])


async def serve(port: int, certfile: str | None = None, keyfile: str | None = None) -> None:
    """Run amqtt on 127.0.0.1:``port`` until SIGTERM (over TLS with ``certfile``/``keyfile``)."""
    import signal

    from amqtt.broker import Broker

    listener: dict[str, object] = {"type": "tcp", "bind": f"127.0.0.1:{port}"}
    if certfile and keyfile:
        listener.update(ssl=True, certfile=certfile, keyfile=keyfile)
    config = {
        "listeners": {"default": listener},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"amqtt broker listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), *sys.argv[2:4]))
