"""The docker driver: one container per workload on a Docker host, through the ``docker`` SDK.

A replace pulls the new image, starts the new container beside the old one, and stops the old one
only once the new one is running: the same no-gap rule as the Kubernetes rolling update.
Containers are found by label, never by name alone, so a crash between two steps is repaired by the
next apply (a leftover is adopted if it matches, removed if not).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import posixpath
import tarfile
import time
from dataclasses import dataclass
from typing import Any

import docker
import requests
from docker import errors as docker_errors

from services.master.drivers.base import (
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    Workload,
    WorkloadState,
    dns_label,
    label_value,
)
from services.master.drivers.manifests import (
    A_GENERATION,
    A_SPEC_HASH,
    A_WORKLOAD,
    L_AI_VERSION,
    L_DEPLOYMENT,
    L_EDGE,
    L_INSTANCE,
    L_MANAGED,
    MANAGED_BY,
    container_resources,
    workload_labels,
)

# Registry answers that will not change by retrying.
_PERMANENT_PULL = ("manifest unknown", "not found", "unauthorized", "denied", "invalid reference")


@dataclass(frozen=True)
class DockerOptions:
    # Several edges sharing one Docker host each get their own container
    # (``{filename}-{ai_class}-{edge}``).
    name_per_edge: bool = True
    restart_policy: str = "unless-stopped"  # or "on-failure" (then at most max_restarts)
    max_restarts: int = 5
    config_path: str = "/app/edgeconfig.xml"
    registry_auth: dict[str, str] | None = None  # {"username", "password", "serveraddress"}
    stop_timeout_s: int = 10
    ready_grace_s: float = 2.0  # the new container must stay up this long before the old one goes
    failed_after_restarts: int = 5
    network_mode: str | None = None
    # A directory on the Docker host where this driver writes each container's live file
    # (routing, hand-off, focus) and which the daemon bind-mounts (read-only) into the container:
    # a change reaches the running program without a restart. It must be the same directory for
    # the master and the daemon (the master on the Docker host, or a shared mount). Unset: the
    # live params travel as environment variables and a change replaces the container.
    live_host_dir: str | None = None
    live_mount_dir: str = "/var/run/edge-ai/live"
    # Where the container finds its secrets (the camera URL) as a ``KEY=VALUE`` env file (0600),
    # copied in before it starts: never in the container's spec (``docker inspect``).
    secret_env_path: str = "/app/.edge-secret.env"
    # A ``hot_handoff`` workload's live secrets (the cameras of the edges it helps), JSON, 0600,
    # owned by the container's user: copied into the container at create and again into the
    # running container on every apply, named by EDGE_LIVE_SECRETS_FILE (hot hand-off, no
    # restart, never in the container's spec).
    live_secrets_path: str = "/app/.edge-live-secrets.json"


def container_name(name: str, edge: EdgeTarget, options: DockerOptions) -> str:
    return dns_label(f"{name}-{edge.node}" if options.name_per_edge else name)


LIVE_FILE = "live.json"


def live_host_path(options: DockerOptions, cname: str) -> str | None:
    """The live file on the Docker host for container ``cname`` (None without a host dir)."""
    if not options.live_host_dir:
        return None
    return os.path.join(options.live_host_dir, cname, LIVE_FILE)


def write_live_file(path: str, live: dict[str, Any]) -> None:
    """Replace the live file in one step (the program never reads half a file). The directory,
    not the file, is bind-mounted: a renamed-over file shows through a directory mount."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(live, sort_keys=True))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def secret_env_text(secret_env: dict[str, str]) -> str:
    """``docker --env-file`` format; a value with a line break cannot be written in it."""
    for key, value in secret_env.items():
        if "\n" in str(value) or "\r" in str(value) or "=" in key or not key:
            raise DriverError(f"secret_env: {key!r} cannot go into an env file")
    return "".join(f"{k}={v}\n" for k, v in sorted(secret_env.items()))


class DockerDriver(RuntimeDriver):
    kind = "docker"

    def __init__(self, client: docker.DockerClient, options: DockerOptions | None = None):
        self.client = client
        self.api = client.api
        self.options = options or DockerOptions()

    @classmethod
    def from_url(
        cls,
        base_url: str,
        options: DockerOptions | None = None,
        *,
        timeout_s: int = 60,
        api_version: str = "1.41",
    ) -> DockerDriver:
        # A fixed API version: "auto" would ask the engine at construction, blocking and failing
        # when it is down.
        # 1.41 is Docker 20.10, what Jetson images ship; newer engines still speak it.
        return cls(
            docker.DockerClient(base_url=base_url, timeout=timeout_s, version=api_version), options
        )

    async def aclose(self) -> None:
        await asyncio.to_thread(self.client.close)

    # -- the interface -----------------------------------------------------------------------------
    async def apply(self, workload: Workload) -> None:
        what = f"apply {workload.name} on {workload.edge.name}"
        name = container_name(workload.name, workload.edge, self.options)
        live_path = live_host_path(self.options, name)
        if live_path is not None:
            # Written first: a running container sees the change at once, a new one starts with it.
            await self._run(write_live_file, live_path, workload.live, what=what)
        existing = await self._run(self._inspect_instance, name, what=what)
        want_hash, want_gen = self._spec_hash(workload), str(workload.generation)
        matching = [
            c
            for c in existing
            if _labels(c).get(A_SPEC_HASH) == want_hash and _labels(c).get(A_GENERATION) == want_gen
        ]
        if matching:
            current = next((c for c in matching if c["State"].get("Running")), matching[0])
            others = [c for c in existing if c["Id"] != current["Id"]]
            if workload.hot_handoff:
                await self._run(self._put_live_secrets, current["Id"], workload, what=what)
            if current["State"].get("Status") == "created":
                await self._run(self.api.start, current["Id"], what=what)
            await self._retire_if_running(current, others, name, what)
            return
        if not workload.ai.image_ref:
            raise DriverError(
                f"AI {workload.ai.id} ({workload.name} {workload.ai.version}) "
                "has no image: build and push it first"
            )
        await self._run(self._pull, workload.ai.image_ref, what=what)
        staging = f"{name}.g{want_gen}-{want_hash[:8]}"
        # A leftover with the staging name but another spec (crash mid-apply) is in the way.
        for c in existing:
            if c["Name"].lstrip("/") == staging:
                await self._run(self._stop_and_remove, c["Id"], what=what)
        new_id = await self._run(self._create, workload, staging if existing else name, what=what)
        await self._run(self.api.start, new_id, what=what)
        await asyncio.sleep(self.options.ready_grace_s)
        (new,) = await self._run(self._inspect_many, [new_id], what=what)
        await self._retire_if_running(new, [c for c in existing if c["Id"] != new_id], name, what)

    async def remove(self, edge: EdgeTarget, name: str) -> None:
        what = f"remove {name} on {edge.name}"
        cname = container_name(name, edge, self.options)
        for c in await self._run(self._inspect_instance, cname, what=what):
            await self._run(self._stop_and_remove, c["Id"], what=what)

    async def observe(self, edge: EdgeTarget) -> list[ObservedWorkload]:
        what = f"observe {edge.name}"
        found = await self._run(
            self._inspect_by_labels,
            [f"{L_MANAGED}={MANAGED_BY}", f"{L_EDGE}={label_value(edge.name)}"],
            what=what,
        )
        by_instance: dict[str, list[dict]] = {}
        for c in found:
            by_instance.setdefault(_labels(c).get(L_INSTANCE, c["Name"]), []).append(c)
        out = []
        for instance in sorted(by_instance):
            newest = max(
                by_instance[instance],
                key=lambda c: (int(_labels(c).get(A_GENERATION) or 0), c.get("Created", "")),
            )
            out.append(await self._observed(newest, what))
        return out

    # -- steps -------------------------------------------------------------------------------------
    def _spec_hash(self, workload: Workload) -> str:
        """What makes a new container due: the live params too, unless they travel by file."""
        if self.options.live_host_dir:
            return workload.spec_hash()
        live = json.dumps(workload.live, sort_keys=True, default=str)
        return hashlib.sha256(f"{workload.spec_hash()}\0{live}".encode()).hexdigest()[:16]

    async def _retire_if_running(self, new: dict, others: list[dict], name: str, what: str) -> None:
        """The new container is up: the old ones go and it takes the workload's name. Not up:
        the old ones keep serving, and the next apply looks again."""
        state = new["State"]
        if not state.get("Running") or state.get("Restarting"):
            return
        for c in others:
            await self._run(self._stop_and_remove, c["Id"], what=what)
        if new["Name"].lstrip("/") != name:
            await self._run(self.api.rename, new["Id"], name, what=what)

    def _pull(self, image_ref: str) -> None:
        repository, _, tag = image_ref.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = image_ref, "latest"
        for event in self.api.pull(
            repository, tag=tag, stream=True, decode=True, auth_config=self.options.registry_auth
        ):
            if "error" in event:
                message = str(event.get("error"))
                cls = (
                    DriverError
                    if any(p in message.lower() for p in _PERMANENT_PULL)
                    else DriverUnavailable
                )
                raise cls(f"pull {image_ref}: {message}")

    def _create(self, workload: Workload, cname: str) -> str:
        options = self.options
        restart: dict[str, Any] = {"Name": options.restart_policy}
        if options.restart_policy == "on-failure":
            restart["MaximumRetryCount"] = options.max_restarts
        resources = container_resources(workload.resources)
        host_kw: dict[str, Any] = {"restart_policy": restart}
        limits = resources.get("limits", {})
        requests_ = resources.get("requests", {})
        if "memory" in limits or "memory" in requests_:
            host_kw["mem_limit"] = _docker_memory(limits.get("memory") or requests_["memory"])
        if "cpu" in limits or "cpu" in requests_:
            host_kw["nano_cpus"] = _nano_cpus(limits.get("cpu") or requests_["cpu"])
        if "nvidia.com/gpu" in limits:
            host_kw["device_requests"] = [
                docker.types.DeviceRequest(
                    count=int(limits["nvidia.com/gpu"]), capabilities=[["gpu"]]
                )
            ]
        if options.network_mode:
            host_kw["network_mode"] = options.network_mode
        labels = {
            **workload_labels(workload),
            L_INSTANCE: container_name(workload.name, workload.edge, options),
            A_WORKLOAD: workload.name,
            A_SPEC_HASH: self._spec_hash(workload),
            A_GENERATION: str(workload.generation),
        }
        # A plain engine has no secret store: secrets go into a 0600 env file copied into the
        # container (below), named by EDGE_SECRET_ENV_FILE; never into its env.
        # The workload's name, not the staging name: the live file outlives a replace.
        live_path = live_host_path(options, container_name(workload.name, workload.edge, options))
        secret_text = secret_env_text(workload.secret_env) if workload.secret_env else ""
        plain = workload.static_env if live_path else workload.env
        env = {k: str(v) for k, v in plain.items()}
        env["EDGE_CONFIG"] = options.config_path
        if live_path:
            env["EDGE_LIVE_FILE"] = posixpath.join(options.live_mount_dir, LIVE_FILE)
            host_kw["binds"] = {
                os.path.dirname(live_path): {"bind": options.live_mount_dir, "mode": "ro"}
            }
        if workload.secret_env:
            env["EDGE_SECRET_ENV_FILE"] = options.secret_env_path
        if workload.hot_handoff:
            env["EDGE_LIVE_SECRETS_FILE"] = options.live_secrets_path
        created = self.api.create_container(
            workload.ai.image_ref,
            name=cname,
            environment=env,
            labels=labels,
            host_config=self.api.create_host_config(**host_kw),
            stop_timeout=options.stop_timeout_s,
        )
        container_id = created["Id"]
        # edgeconfig.xml goes into the container before it starts: works with a remote engine, no
        # bind mount.
        directory, filename = posixpath.split(options.config_path)
        self.api.put_archive(
            container_id, directory or "/", _tar_one(filename, workload.edgeconfig_xml.encode())
        )
        if workload.secret_env:
            directory, filename = posixpath.split(options.secret_env_path)
            secret_tar = _tar_one(filename, secret_text.encode(), mode=0o600)
            self._put_archive_as_user(container_id, directory or "/", secret_tar)
        if workload.hot_handoff:
            self._put_live_secrets(container_id, workload)
        return container_id

    def _put_live_secrets(self, container_id: str, workload: Workload) -> None:
        """The live secrets file into the container (created or running): 0600, its user's."""
        directory, filename = posixpath.split(self.options.live_secrets_path)
        body = json.dumps(workload.live_secrets, sort_keys=True).encode()
        # A fresh mtime: the program notices the change (it looks at mtime and size).
        tar = _tar_one(filename, body, mode=0o600, mtime=time.time())
        self._put_archive_as_user(container_id, directory or "/", tar)

    def _put_archive_as_user(self, container_id: str, path: str, data: bytes) -> None:
        """``put_archive`` with ``copyUIDGID=1``: the engine chowns what it extracts to the
        container's user (the image's ``USER``, looked up in the container's own /etc/passwd), so
        a 0600 file stays readable by the program when the image runs as a non-root user (the
        platform's image runs as 10001). docker-py's ``put_archive`` has no such parameter."""
        url = self.api._url("/containers/{0}/archive", container_id)
        res = self.api._put(url, params={"path": path, "copyUIDGID": "1"}, data=data)
        self.api._raise_for_status(res)

    def _stop_and_remove(self, container_id: str) -> None:
        try:
            self.api.stop(container_id, timeout=self.options.stop_timeout_s)
            # v: its anonymous volumes too (an image's VOLUME): an undeploy leaves nothing.
            self.api.remove_container(container_id, force=True, v=True)
        except docker_errors.NotFound:
            pass  # already gone

    def _inspect_instance(self, cname: str) -> list[dict]:
        return self._inspect_by_labels([f"{L_MANAGED}={MANAGED_BY}", f"{L_INSTANCE}={cname}"])

    def _inspect_by_labels(self, labels: list[str]) -> list[dict]:
        summaries = self.api.containers(all=True, filters={"label": labels})
        return self._inspect_many([s["Id"] for s in summaries])

    def _inspect_many(self, ids: list[str]) -> list[dict]:
        out = []
        for cid in ids:
            try:
                out.append(self.api.inspect_container(cid))
            except docker_errors.NotFound:
                continue  # removed while we looked
        return out

    def _logs(self, container_id: str, tail: int = 20) -> list[str]:
        raw = self.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        return raw.decode(errors="replace").splitlines()

    async def _observed(self, c: dict, what: str) -> ObservedWorkload:
        labels = _labels(c)
        state = c["State"]
        restarts = int(c.get("RestartCount") or 0)
        deployment_id = labels.get(L_DEPLOYMENT)
        observed = ObservedWorkload(
            deployment_id=int(deployment_id) if deployment_id and deployment_id.isdigit() else None,
            name=labels.get(A_WORKLOAD, c["Name"].lstrip("/")),
            state=WorkloadState.PENDING,
            restarts=restarts,
            version=labels.get(L_AI_VERSION),
            generation=int(labels[A_GENERATION])
            if labels.get(A_GENERATION, "").isdigit()
            else None,
        )
        status = state.get("Status")
        if state.get("Restarting") or status == "restarting":
            failed = restarts >= self.options.failed_after_restarts
            observed.state = WorkloadState.FAILED if failed else WorkloadState.RESTARTING
            observed.exit_code = state.get("ExitCode")
            observed.reason = (
                f"restarting after exit code {state.get('ExitCode')} ({restarts} restarts)"
            )
        elif state.get("Running"):
            observed.state = WorkloadState.RUNNING
        elif status in ("exited", "dead"):
            observed.state = WorkloadState.FAILED
            observed.exit_code = state.get("ExitCode")
            observed.reason = state.get("Error") or f"exited with code {state.get('ExitCode')}"
        else:
            observed.reason = f"container {status}"
        if observed.state in (WorkloadState.FAILED, WorkloadState.RESTARTING):
            observed.log_tail = await self._run(self._logs, c["Id"], what=what)
        return observed

    async def _run(self, fn, *args, what: str):
        try:
            return await asyncio.to_thread(fn, *args)
        except docker_errors.APIError as exc:
            raise _translate(exc, what) from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise DriverUnavailable(
                f"{what}: Docker engine unreachable ({exc.__class__.__name__})"
            ) from exc
        except docker_errors.DockerException as exc:
            raise DriverError(f"{what}: {exc}") from exc


def _labels(c: dict) -> dict[str, str]:
    return (c.get("Config") or {}).get("Labels") or {}


def _tar_one(name: str, data: bytes, *, mode: int = 0o644, mtime: float = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = int(mtime)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_BINARY = {
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}


def _docker_memory(quantity: str) -> int:
    for suffix in sorted(_BINARY, key=len, reverse=True):
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * _BINARY[suffix])
    return int(float(quantity))


def _nano_cpus(quantity: str) -> int:
    if quantity.endswith("m"):
        return int(float(quantity[:-1]) * 1_000_000)
    return int(float(quantity) * 1_000_000_000)


def _translate(exc: docker_errors.APIError, what: str) -> Exception:
    code = exc.status_code or 0
    text = f"{what}: Docker answered {code}: {exc.explanation or exc}"
    if code == 0 or code >= 500 or code in (408, 409, 429):
        return DriverUnavailable(text)
    return DriverError(text)
