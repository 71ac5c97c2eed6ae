"""Issue 22 item 4: a package builds for every architecture its clusters' edges run (here amd64
from MASTER_IMAGE_ARCHITECTURES and arm64 from the cluster's own setting), pushed as one image
index; the arm64 RUN step runs under qemu-user-static where binfmt_misc can register it, and the
build is refused saying so where it cannot."""

from __future__ import annotations

import json

from tests.helpers.containers import ContainerEnv, ensure_binfmt, push_multiarch_busybox
from tests.helpers.registry import RunningRegistry, skopeo_inspect

DOCKERFILE = """\
FROM base/busybox:1
RUN uname -m > /built-on
COPY main.sh /main.sh
CMD ["/bin/sh", "/main.sh"]
"""


async def test_an_arm64_and_amd64_image_index(
    build_stack, container_env: ContainerEnv, container_registry: RunningRegistry
) -> None:
    push_multiarch_busybox(
        container_env, f"{container_registry.host}/base/busybox:1", ("amd64", "arm64")
    )
    qemu = ensure_binfmt("arm64")
    async with build_stack(
        MASTER_BUILDER="buildah",
        MASTER_IMAGE_ARCHITECTURES="amd64",
        MASTER_CLUSTER_RUNTIME=json.dumps({"field": {"architectures": ["arm64"]}}),
    ) as stack:
        folder = stack.package_dir / "tiny"
        folder.mkdir()
        (folder / "Dockerfile").write_text(DOCKERFILE)
        (folder / "main.sh").write_text("cat /built-on\n")
        r = await stack.master.post(
            "/upload_edgeAI", json={"filename": "tiny", "version": "01", "ai_class": "01"}
        )
        if not qemu:  # the documented refusal: the arm64 RUN step cannot run here
            assert r.status_code == 422, r.text
            message = r.json()["message"]
            assert "line 2: RUN uname -m" in message and "arm64" in message, message
            assert "qemu-user-static" in message and "update-binfmts" in message
            return
        assert r.status_code == 200, r.text
        ai = await stack.wait_built(r.json()["aid"])
        assert ai["status"] == "ready", ai
        image = ai["image_ref"]

    index = skopeo_inspect(image, raw=True)
    assert index["mediaType"] in (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ), index
    platforms = sorted(m["platform"]["architecture"] for m in index["manifests"])
    assert platforms == ["amd64", "arm64"], index
    # Each architecture's RUN step ran as that architecture (arm64 under qemu).
    for arch, machine in (("amd64", "x86_64"), ("arm64", "aarch64")):
        container_env.podman("pull", "--tls-verify=false", "--arch", arch, image)
        out = container_env.podman("run", "--rm", "--arch", arch, image)
        assert out.stdout.strip() == machine, (arch, out.stdout)


async def test_the_layer_builder_pushes_an_index_too(
    build_stack, container_env: ContainerEnv, container_registry: RunningRegistry
) -> None:
    """A package without RUN, built engine-free on a multi-arch base: one image per architecture
    (the base's variant of each), tagged as one index."""
    base = push_multiarch_busybox(
        container_env, f"{container_registry.host}/base/busybox:1", ("amd64", "arm64")
    )
    async with build_stack(
        MASTER_BUILDER="layers", MASTER_BASE_IMAGE=base, MASTER_IMAGE_ARCHITECTURES="amd64,arm64"
    ) as stack:
        folder = stack.package_dir / "plain"
        folder.mkdir()
        (folder / "Dockerfile").write_text(
            'FROM base/busybox:1\nCOPY main.sh .\nCMD ["/bin/sh", "main.sh"]\n'
        )
        (folder / "main.sh").write_text("uname -m\n")
        r = await stack.master.post(
            "/upload_edgeAI", json={"filename": "plain", "version": "01", "ai_class": "01"}
        )
        assert r.status_code == 200, r.text
        ai = await stack.wait_built(r.json()["aid"])
        assert ai["status"] == "ready", ai
    index = skopeo_inspect(ai["image_ref"], raw=True)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json", index
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    machines = {"amd64": "x86_64", "arm64": "aarch64"}
    for arch in ("amd64", "arm64") if ensure_binfmt("arm64") else ("amd64",):
        container_env.podman("pull", "--tls-verify=false", "--arch", arch, ai["image_ref"])
        out = container_env.podman("run", "--rm", "--arch", arch, ai["image_ref"])
        assert out.stdout.strip() == machines[arch]
