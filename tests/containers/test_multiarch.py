"""Issue 22 item 4: a package builds for every architecture its clusters' edges run (here amd64
from MASTER_IMAGE_ARCHITECTURES and arm64 from the cluster's own setting), pushed as one image
index; the arm64 RUN step runs under qemu-user-static where binfmt_misc can register it, and the
build is refused saying so where it cannot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from shared.errors import Invalid
from tests.helpers.containers import ContainerEnv, busybox_oci_layout, ensure_binfmt
from tests.helpers.processes import edgectl
from tests.helpers.registry import RunningRegistry, skopeo_inspect

DOCKERFILE = """\
FROM base/busybox:1
RUN uname -m > /built-on
COPY main.sh /main.sh
CMD ["/bin/sh", "/main.sh"]
"""


async def test_an_arm64_and_amd64_image_index(
    build_stack, container_env: ContainerEnv, busybox_index: str
) -> None:
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
    build_stack, tmp_path: Path, container_env: ContainerEnv, container_registry: RunningRegistry
) -> None:
    """A package without RUN, built engine-free on a multi-arch base brought in with
    `edgectl registry import-base` from an OCI layout: one image per architecture (the base's
    variant of each), tagged as one index."""
    layout = busybox_oci_layout(container_env, tmp_path / "layout", ("amd64", "arm64"))
    imported = subprocess.run(
        edgectl(
            "registry",
            "import-base",
            str(layout),
            "--name",
            "debian-busybox:bookworm",
            "--registry",
            container_registry.url,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **container_env.env},
    )
    assert imported.returncode == 0, imported.stderr
    base = f"{container_registry.host}/debian-busybox:bookworm"
    assert imported.stdout.startswith(base + " ")
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


async def test_a_foreign_run_step_without_qemu_is_refused_saying_why(tmp_path, monkeypatch) -> None:
    """Where binfmt_misc has no qemu handler (here: an empty folder stands for it), an arm64 RUN
    step cannot run on an amd64 master: refused naming the line and what to install."""
    from services.master.builds import engine
    from services.master.packages import PackageManifest
    from services.master.registry.config import RegistryConfig
    from tests.helpers.env import settings_for

    monkeypatch.setattr(engine, "BINFMT_DIR", tmp_path)
    monkeypatch.setattr(engine, "host_architecture", lambda: "amd64")
    settings = settings_for(
        "master", "postgresql://unused", builder="buildah", image_architectures="amd64,arm64"
    )
    manifest = PackageManifest(
        filename="tiny", version="01", ai_class="01", command=["sh"], dockerfile="Dockerfile"
    )
    registry = RegistryConfig(url="http://127.0.0.1:9")
    with pytest.raises(Invalid) as refused:
        await engine.check_dockerfile(settings, registry, manifest, DOCKERFILE)
    message = refused.value.message
    assert message.startswith("Dockerfile line 2: RUN uname -m > /built-on:"), message
    assert "arm64 programs cannot run on this amd64 master" in message
    assert "qemu-user-static" in message and "update-binfmts --enable qemu-aarch64" in message
