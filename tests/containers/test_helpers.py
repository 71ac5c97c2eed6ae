"""The container test helpers themselves: a RUN step builds with buildah on the private storage,
the image is pushed to the local registry, and podman's Docker Engine API serves it."""

from __future__ import annotations

from pathlib import Path

import docker

from tests.helpers.containers import CA_BUNDLE, ContainerEnv, PodmanService
from tests.helpers.registry import RunningRegistry, skopeo_inspect


def test_build_push_and_run_through_the_engine_api(
    tmp_path: Path,
    container_env: ContainerEnv,
    container_registry: RunningRegistry,
    base_image: str,
    podman_service: PodmanService,
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f'FROM {base_image}\nRUN echo built-by-run > /marker\nCMD ["cat", "/marker"]\n'
    )
    image = f"{container_registry.host}/helpers/marker:1"
    container_env.buildah(
        "bud", "--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "-t", image, str(tmp_path)
    )
    container_env.buildah("push", "--tls-verify=false", image)
    assert skopeo_inspect(image)["Architecture"] == "amd64"

    client = docker.DockerClient(base_url=podman_service.docker_host)
    try:
        client.images.pull(image)
        out = client.containers.run(image, remove=True)
        assert out.decode().strip() == "built-by-run"
    finally:
        client.close()
