"""Daemonless build and push against a real registry (Debian's docker-registry on loopback),
checked with skopeo, an independent client."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from services.master.packages import ArtifactStore, ingest_package
from services.master.registry import RegistryClient, RegistryConfig, build_and_push, delete_image
from services.master.registry.client import DOCKER_MANIFEST, OCI_MANIFEST
from tests.helpers.registry import SKOPEO_BIN, SkopeoError, skopeo_inspect, start_registry

from .conftest import make_targz, package_files


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _ingest(tmp_path: Path, store: ArtifactStore, version: str = "01", **extra):
    path = make_targz(tmp_path / f"pkg-{version}.tar.gz", package_files(version, **extra))
    return await ingest_package(path, store)


def _skopeo_copy(src: str, dest: str, tmp_path: Path, *extra: str) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    out = subprocess.run(
        [
            SKOPEO_BIN,
            "--policy",
            str(policy),
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            *extra,
            src,
            dest,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def _pull_to_dir(image: str, tmp_path: Path) -> Path:
    """skopeo copies every blob (verifying digests) into a dir: layout we can read."""
    dest = tmp_path / f"pulled-{abs(hash(image))}"
    _skopeo_copy(f"docker://{image}", f"dir:{dest}", tmp_path)
    return dest


async def test_push_scratch_image_and_inspect_with_skopeo(
    registry, tmp_path: Path, store: ArtifactStore
):
    pkg = await _ingest(tmp_path, store)
    async with RegistryClient(RegistryConfig(url=registry.url)) as reg:
        pushed = await build_and_push(
            reg,
            artifact_path=store.path(pkg.digest),
            manifest=pkg.manifest,
            package_digest=pkg.digest,
            tmp_dir=store.tmp_dir,
        )
    assert pushed.reference == f"{registry.host}/monitoring-01:01"
    assert (pushed.repository, pushed.tag, pushed.media_type) == (
        "monitoring-01",
        "01",
        OCI_MANIFEST,
    )

    info = skopeo_inspect(pushed.reference)
    assert info["Digest"] == pushed.digest
    assert info["Labels"]["org.edge-ai.filename"] == "monitoring"
    assert info["Labels"]["org.edge-ai.version"] == "01"
    assert info["Labels"]["org.edge-ai.ai_class"] == "01"
    assert info["Labels"]["org.edge-ai.package-digest"] == pkg.digest
    assert info["Labels"]["org.opencontainers.image.version"] == "01"
    assert sorted(info["Env"]) == ["LOG_LEVEL=info", "MODEL_PATH=models/best.pt"]

    config = skopeo_inspect(pushed.reference, config=True)
    assert config["config"]["Entrypoint"] == ["python", "main.py", "--config", "edgeconfig.xml"]
    assert config["config"]["WorkingDir"] == "/opt/edge-ai/monitoring"
    assert "Cmd" not in config["config"]

    raw = skopeo_inspect(pushed.reference, raw=True)
    assert raw["mediaType"] == OCI_MANIFEST and raw["config"]["digest"] == pushed.config_digest
    assert [layer["digest"] for layer in raw["layers"]] == [pushed.layer_digest]

    # The layer's diff_id is the sha256 of the uncompressed tar, and it holds the package.
    pulled = _pull_to_dir(pushed.reference, tmp_path)
    blob = (pulled / pushed.layer_digest.removeprefix("sha256:")).read_bytes()
    tar_bytes = gzip.decompress(blob)
    assert config["rootfs"]["diff_ids"] == [_sha(tar_bytes)]
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        names = tf.getnames()
        assert (
            tf.extractfile("opt/edge-ai/monitoring/main.py").read()
            == b"print('monitoring running')\n"
        )
    assert names[:3] == ["opt", "opt/edge-ai", "opt/edge-ai/monitoring"]
    assert "opt/edge-ai/monitoring/models/best.pt" in names


async def test_push_is_repeatable_versions_coexist_and_delete(
    registry, tmp_path: Path, store: ArtifactStore
):
    async with RegistryClient(RegistryConfig(url=registry.url)) as reg:
        v1 = await _ingest(tmp_path, store, "1.1")
        v2 = await _ingest(tmp_path, store, "1.2")
        p1 = await build_and_push(
            reg, artifact_path=store.path(v1.digest), manifest=v1.manifest, package_digest=v1.digest
        )
        again = await build_and_push(
            reg, artifact_path=store.path(v1.digest), manifest=v1.manifest, package_digest=v1.digest
        )
        assert again.digest == p1.digest  # same package, same image: pushing twice is harmless
        p2 = await build_and_push(
            reg, artifact_path=store.path(v2.digest), manifest=v2.manifest, package_digest=v2.digest
        )
        assert p2.digest != p1.digest
        assert {"1.1", "1.2"} <= set(await reg.list_tags("monitoring-01"))
        assert skopeo_inspect(p2.reference)["Labels"]["org.edge-ai.version"] == "1.2"

        assert await delete_image(reg, p1.reference) == "deleted"
        with pytest.raises(SkopeoError) as gone:
            skopeo_inspect(p1.reference)
        assert "manifest unknown" in gone.value.stderr
        assert skopeo_inspect(p2.reference)["Digest"] == p2.digest  # the other version stays
        assert await delete_image(reg, p1.reference) == "not_found"
        assert await delete_image(reg, p2.reference, p2.digest) == "deleted"
        assert "1.2" not in await reg.list_tags("monitoring-01")


async def test_delete_when_registry_forbids_it(tmp_path: Path, store: ArtifactStore):
    reg_proc = start_registry(tmp_path / "nodelete", delete_enabled=False)
    try:
        pkg = await _ingest(tmp_path, store)
        async with RegistryClient(RegistryConfig(url=reg_proc.url)) as reg:
            pushed = await build_and_push(
                reg,
                artifact_path=store.path(pkg.digest),
                manifest=pkg.manifest,
                package_digest=pkg.digest,
            )
            assert await delete_image(reg, pushed.reference, pushed.digest) == "not_allowed"
        assert skopeo_inspect(pushed.reference)["Digest"] == pushed.digest
    finally:
        reg_proc.stop()


def _tiny_base_layout(root: Path) -> None:
    """An OCI image layout with one layer (a little file tree, no busybox) and a config
    carrying PATH, a Cmd and a label: the base an AI image is built on."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        d = _sha(data)
        (blobs / d.removeprefix("sha256:")).write_bytes(data)
        return d

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in {
            "etc/os-release": b"NAME=tiny-base\n",
            "usr/local/bin/hello": b"#!/bin/sh\necho hello\n",
        }.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o755
            tf.addfile(ti, io.BytesIO(data))
    tar = buf.getvalue()
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LOG_LEVEL=warning"],
                "Cmd": ["python3"],
                "Labels": {"org.example.base": "tiny"},
            },
            "rootfs": {"type": "layers", "diff_ids": [_sha(tar)]},
            "history": [{"created_by": "tiny base"}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": put(manifest),
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "1"},
                    }
                ],
            }
        )
    )


@pytest.mark.parametrize("media_types", ["oci", "docker"])
async def test_build_on_a_base_image_from_the_same_registry(
    registry, tmp_path: Path, store: ArtifactStore, media_types
):
    layout = tmp_path / "base-layout"
    _tiny_base_layout(layout)
    # skopeo pushes the base as Docker schema 2: our build must name its layer in its own family.
    _skopeo_copy(
        f"oci:{layout}:1",
        f"docker://{registry.host}/edge-base/tiny:1",
        tmp_path,
        "--format",
        "v2s2",
    )
    base_info = skopeo_inspect(f"{registry.host}/edge-base/tiny:1")

    files = package_files(
        **{
            "aipackage.yaml": package_files()["aipackage.yaml"]
            .decode()
            .replace('ai_class: "01"', f'ai_class: "{"05" if media_types == "oci" else "06"}"')
        }
    )
    pkg = await ingest_package(make_targz(tmp_path / "p.tar.gz", files), store)
    async with RegistryClient(RegistryConfig(url=registry.url)) as reg:
        pushed = await build_and_push(
            reg,
            artifact_path=store.path(pkg.digest),
            manifest=pkg.manifest,
            package_digest=pkg.digest,
            base_image="edge-base/tiny:1",
            media_types=media_types,
        )
        # the base layer reached the AI's repository by a cross-repository mount
        assert await reg.blob_exists(pushed.repository, base_info["Layers"][0])

    info = skopeo_inspect(pushed.reference)
    assert info["Layers"] == [base_info["Layers"][0], pushed.layer_digest]
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in info["Env"]
    assert (
        "LOG_LEVEL=info" in info["Env"] and "LOG_LEVEL=warning" not in info["Env"]
    )  # manifest env wins
    assert info["Labels"]["org.example.base"] == "tiny"
    assert info["Labels"]["org.opencontainers.image.base.name"] == "edge-base/tiny:1"
    assert info["Labels"]["org.opencontainers.image.base.digest"] == base_info["Digest"]
    config = skopeo_inspect(pushed.reference, config=True)
    assert (
        "Cmd" not in config["config"]
    )  # the base's Cmd must not become arguments of our entrypoint
    assert config["config"]["Entrypoint"][0] == "python"
    raw = skopeo_inspect(pushed.reference, raw=True)
    expected = OCI_MANIFEST if media_types == "oci" else DOCKER_MANIFEST
    assert raw["mediaType"] == expected
    assert len({layer["mediaType"] for layer in raw["layers"]}) == 1
    # an independent full pull verifies every blob's digest
    pulled = _pull_to_dir(pushed.reference, tmp_path)
    assert (pulled / base_info["Layers"][0].removeprefix("sha256:")).exists()


async def test_large_layer_goes_up_in_chunks(registry, tmp_path: Path, store: ArtifactStore):
    noise = os.urandom(600_000)  # incompressible: the layer is > 3 chunks of 256 KiB
    files = package_files(**{"models/big.bin": noise})
    files["aipackage.yaml"] = files["aipackage.yaml"].replace(b'ai_class: "01"', b'ai_class: "07"')
    pkg = await ingest_package(make_targz(tmp_path / "p.tar.gz", files), store)
    config = RegistryConfig(url=registry.url, chunk_size=256 * 1024)
    seen: list[str] = []

    class Recording(httpx.AsyncHTTPTransport):  # the real transport, noting each request's method
        async def handle_async_request(self, request):
            seen.append(request.method)
            return await super().handle_async_request(request)

    async with RegistryClient(config, transport=Recording()) as reg:
        pushed = await build_and_push(
            reg,
            artifact_path=store.path(pkg.digest),
            manifest=pkg.manifest,
            package_digest=pkg.digest,
        )
    assert seen.count("PATCH") == 3  # 256 KiB + 256 KiB + the rest
    pulled = _pull_to_dir(pushed.reference, tmp_path)
    blob = (pulled / pushed.layer_digest.removeprefix("sha256:")).read_bytes()
    assert 2 * 256 * 1024 < len(blob) <= 3 * 256 * 1024 and _sha(blob) == pushed.layer_digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tf:
        assert tf.extractfile("opt/edge-ai/monitoring/models/big.bin").read() == noise


async def test_base_image_must_exist(registry, tmp_path: Path, store: ArtifactStore):
    from shared.errors import Invalid, NotFound

    pkg = await _ingest(tmp_path, store)
    async with RegistryClient(RegistryConfig(url=registry.url)) as reg:
        with pytest.raises(NotFound) as missing:
            await build_and_push(
                reg,
                artifact_path=store.path(pkg.digest),
                manifest=pkg.manifest,
                package_digest=pkg.digest,
                base_image="python:3.11-slim",
            )
        assert (
            missing.value.message
            == f"image python:3.11-slim is not in the registry {registry.host}"
        )
        with pytest.raises(Invalid) as elsewhere:
            await build_and_push(
                reg,
                artifact_path=store.path(pkg.digest),
                manifest=pkg.manifest,
                package_digest=pkg.digest,
                base_image="docker.io/library/python:3.11",
            )
        assert "must be in the private registry" in elsewhere.value.message
