"""A real private registry for tests: Debian's ``docker-registry`` (distribution 2.8) on a free
loopback port, storage in a temp folder, deletion enabled; optionally htpasswd basic auth.

    reg = start_registry(tmp_path)                      # anonymous
    reg = start_registry(tmp_path, users={"ci": "pw"})  # basic auth (bcrypt htpasswd)
    ... reg.host ("127.0.0.1:PORT"), reg.url ("http://127.0.0.1:PORT") ...
    reg.stop()
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.env import free_port
from tests.helpers.processes import Proc, wait_http

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO_BIN = shutil.which("skopeo") or "/usr/bin/skopeo"


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    """distribution accepts only bcrypt entries in htpasswd files."""
    import bcrypt

    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}"
        for u, p in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class RunningRegistry:
    proc: Proc
    port: int
    root: Path
    users: dict[str, str]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        self.proc.stop()


def start_registry(
    workdir: Path,
    *,
    users: dict[str, str] | None = None,
    auth: dict | None = None,
    delete_enabled: bool = True,
    timeout: float = 20,
    readonly: bool = False,
    port: int | None = None,
) -> RunningRegistry:
    """``users``: htpasswd basic auth; ``auth``: any other distribution ``auth:`` section
    (e.g. ``{"token": {"realm": ..., "service": ..., "issuer": ..., "rootcertbundle": ...}}``);
    ``readonly``: distribution's read-only maintenance mode (every push refused); ``port``: start
    again where an earlier one ran (same ``workdir``: same storage)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    # JSON is valid YAML: no quoting surprises with temp paths.
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": delete_enabled},
            "maintenance": {"readonly": {"enabled": readonly}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-registry-http-secret"},
    }
    if users:
        htpasswd = workdir / "htpasswd"
        write_htpasswd(htpasswd, users)
        config["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
    if auth:
        config["auth"] = auth
    cfg = workdir / "config.yml"
    cfg.write_text(json.dumps(config))
    proc = Proc(
        [REGISTRY_BIN, "serve", str(cfg)],
        env={"PATH": "/usr/bin:/bin"},
        log_path=workdir / "registry.log",
    )
    try:
        wait_http(
            f"http://127.0.0.1:{port}/v2/",
            timeout=timeout,
            proc=proc,
            expect=401 if (users or auth) else 200,
        )
    except BaseException:
        proc.stop()
        raise
    return RunningRegistry(proc, port, workdir, dict(users or {}))


def skopeo_inspect(
    image: str, *, raw: bool = False, config: bool = False, creds: str | None = None
) -> dict:
    """``skopeo inspect`` over plain HTTP (an independent client's view of what we pushed)."""
    args = [SKOPEO_BIN, "inspect", "--tls-verify=false"]
    if raw:
        args.append("--raw")
    if config:
        args.append("--config")
    if creds:
        args += ["--creds", creds]
    args.append(f"docker://{image}")
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SkopeoError(out.returncode, out.stderr.strip())
    return json.loads(out.stdout)


class SkopeoError(RuntimeError):
    def __init__(self, code: int, stderr: str):
        super().__init__(f"skopeo exited {code}: {stderr}")
        self.code = code
        self.stderr = stderr
