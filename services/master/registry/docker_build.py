"""Optional build path: a package with a Dockerfile, built by a reachable Docker engine
(``MASTER_DOCKER_HOST``) with the ``docker`` SDK, then pushed by the engine to the same
private registry. The SDK is blocking, so every call runs in a thread.

Tested against an in-test HTTP endpoint answering like the Engine API for the two calls made
(build, push).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shared.errors import Invalid, Unavailable, UpstreamError

from ..packages import ArtifactStore, PackageManifest, extract_artifact
from .config import RegistryConfig
from .dockerfile import base_references, rewrite_from_lines
from .reference import image_name

DOCKER_API_VERSION = "1.43"


@dataclass(frozen=True)
class DockerBuiltImage:
    reference: str
    repository: str
    tag: str
    digest: str | None  # the manifest digest the engine reports after pushing


def image_labels(manifest: PackageManifest, package_digest: str) -> dict[str, str]:
    labels = {
        "org.edge-ai.filename": manifest.filename,
        "org.edge-ai.version": manifest.version,
        "org.edge-ai.ai_class": manifest.ai_class,
        "org.edge-ai.package-digest": package_digest,
        "org.opencontainers.image.title": manifest.repository,
        "org.opencontainers.image.version": manifest.version,
    }
    if manifest.condition:
        labels["org.edge-ai.condition"] = manifest.condition
    return labels


def _stream_errors(stream, what: str, log: IO[str] | None = None) -> list[dict[str, Any]]:
    events = []
    for event in stream:
        events.append(event)
        if log is not None:
            text = event.get("stream") or event.get("status") or event.get("error")
            if text:
                log.write(text if text.endswith("\n") else text + "\n")
                log.flush()
        if "error" in event or "errorDetail" in event:
            detail = (event.get("errorDetail") or {}).get("message") or event.get("error")
            raise UpstreamError(f"docker {what} failed: {detail}")
    return events


def _build_and_push_sync(
    docker_host: str,
    context: Path,
    manifest: PackageManifest,
    package_digest: str,
    registry: RegistryConfig,
    timeout_s: int,
    log: IO[str] | None,
    platform: str | None,
) -> DockerBuiltImage:
    import docker
    from docker.errors import APIError, DockerException

    ref = image_name(registry.host, manifest.filename, manifest.ai_class, manifest.version)
    repo_full = f"{ref.host}/{ref.repository}"
    try:
        client = docker.APIClient(
            base_url=docker_host, version=DOCKER_API_VERSION, timeout=timeout_s
        )
    except DockerException as exc:
        raise Unavailable(f"the Docker engine at {docker_host} cannot be used: {exc}") from None
    try:
        _stream_errors(
            client.build(
                path=str(context),
                dockerfile=manifest.dockerfile,
                tag=str(ref),
                rm=True,
                forcerm=True,
                labels=image_labels(manifest, package_digest),
                decode=True,
                platform=platform,
            ),
            "build",
            log,
        )
        auth = None
        if registry.has_credentials():
            auth = {"username": registry.username, "password": registry.password.get_secret_value()}  # type: ignore[union-attr]
        events = _stream_errors(
            client.push(repo_full, tag=ref.tag, auth_config=auth, stream=True, decode=True),
            "push",
            log,
        )
    except APIError as exc:
        raise UpstreamError(
            f"the Docker engine refused the request: {exc.explanation or exc}"
        ) from None
    except DockerException as exc:
        raise Unavailable(
            f"the Docker engine at {docker_host} failed: {type(exc).__name__}"
        ) from None
    finally:
        client.close()
    digest = next(
        (
            e["aux"].get("Digest")
            for e in events
            if isinstance(e.get("aux"), dict) and e["aux"].get("Digest")
        ),
        None,
    )
    return DockerBuiltImage(str(ref), ref.repository, ref.tag or manifest.version, digest)


async def docker_build_and_push(
    *,
    docker_host: str,
    store: ArtifactStore,
    package_digest: str,
    manifest: PackageManifest,
    registry: RegistryConfig,
    timeout_s: int = 1800,
    log: IO[str] | None = None,
    platform: str | None = None,
) -> DockerBuiltImage:
    """Unpack the stored package as the build context and have the engine build and push it
    (its ``FROM`` lines resolved against the private registry); the engine's output goes to
    ``log``."""
    if not manifest.dockerfile:
        raise Invalid(
            "the package has no dockerfile in its manifest; it is built without Docker",
            field="manifest.dockerfile",
        )
    context = Path(tempfile.mkdtemp(dir=store.tmp_dir, prefix="docker-ctx-"))
    try:
        await extract_artifact(store, package_digest, context)
        dockerfile = context / manifest.dockerfile
        if dockerfile.is_file():
            text = dockerfile.read_text(encoding="utf-8", errors="replace")
            bases = base_references(text, registry.host)
            dockerfile.write_text(rewrite_from_lines(text, bases), encoding="utf-8")
        return await asyncio.to_thread(
            _build_and_push_sync,
            docker_host,
            context,
            manifest,
            package_digest,
            registry,
            timeout_s,
            log,
            platform,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, context, True)
