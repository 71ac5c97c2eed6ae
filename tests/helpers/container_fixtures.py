"""Session-wide pytest fixtures over tests/helpers/containers.py: one private podman/buildah
storage root, one local registry and one Debian base image per test session, all removed at the
end. Use them from a conftest:

    from tests.helpers.container_fixtures import *  # noqa: F403

- ``container_env``: a ``ContainerEnv`` (``.env`` holds the CONTAINERS_* variables to hand to
  processes that should use it; ``.podman()``, ``.buildah()``, ``.skopeo()`` run the tools).
- ``container_registry``: a ``RunningRegistry`` (Debian's docker-registry, anonymous), already
  marked insecure in ``container_env``'s registries.conf.
- ``base_image``: ``"127.0.0.1:PORT/base/debian:bookworm"``, Debian minbase with python3, pip and
  ca-certificates, in ``container_registry``.
- ``busybox_index``: ``"127.0.0.1:PORT/base/busybox:1"``, a tiny amd64+arm64 image index.
- ``podman_service``: a ``PodmanService`` (``.docker_host`` is ``unix:///...sock``) serving the
  Docker Engine API over ``container_env``'s storage.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.containers import (
    ContainerEnv,
    PodmanService,
    push_multiarch_busybox,
    start_podman_service,
    tools_missing,
)
from tests.helpers.registry import RunningRegistry, start_registry

__all__ = [
    "base_image",
    "busybox_index",
    "container_env",
    "container_registry",
    "podman_service",
]

NEEDED = ("podman", "buildah", "skopeo", "runc", "mmdebstrap", "docker-registry")


@pytest.fixture(scope="session")
def container_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerEnv]:
    missing = tools_missing(*NEEDED)
    if missing:
        pytest.fail(f"not installed: {' '.join(missing)} (scripts/test.sh installs them)")
    cenv = ContainerEnv(tmp_path_factory.mktemp("containers"))
    try:
        yield cenv
    finally:
        cenv.cleanup()


@pytest.fixture(scope="session")
def container_registry(
    tmp_path_factory: pytest.TempPathFactory, container_env: ContainerEnv
) -> Iterator[RunningRegistry]:
    reg = start_registry(tmp_path_factory.mktemp("container-registry"))
    container_env.add_insecure_registry(reg.host)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def base_image(container_env: ContainerEnv, container_registry: RunningRegistry) -> str:
    return container_env.import_base(f"{container_registry.host}/base/debian:bookworm")


@pytest.fixture(scope="session")
def busybox_index(container_env: ContainerEnv, container_registry: RunningRegistry) -> str:
    """``"127.0.0.1:PORT/base/busybox:1"``: one image index, busybox for amd64 and arm64
    (Debian's busybox-static, /bin/sh linked to it), made without running anything of arm64."""
    image = f"{container_registry.host}/base/busybox:1"
    return push_multiarch_busybox(container_env, image, ("amd64", "arm64"))


@pytest.fixture(scope="session")
def podman_service(
    container_env: ContainerEnv, container_registry: RunningRegistry
) -> Iterator[PodmanService]:
    # Depends on the registry so that registries.conf names it before the service starts.
    svc = start_podman_service(container_env)
    try:
        yield svc
    finally:
        svc.stop()
