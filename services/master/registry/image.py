"""Daemonless image assembly: the package as one gzip layer on a base image, pushed to the
private registry through the Registry API (no Docker engine involved).

The base image comes from the same registry (mirror e.g. ``python:3.11-slim`` into it once);
its layers are cross-repository mounted, or copied when the registry declines a mount.
``scratch`` (or no base) gives an image holding only the package layer.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, Protocol, cast

from shared.errors import Invalid, UpstreamError

from ..packages.archive import FIXED_MTIME
from ..packages.manifest import PackageManifest
from .client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    sha256_digest,
)
from .reference import ImageRef, image_name

WORKDIR_ROOT = "/opt/edge-ai"
CREATED = (
    "1980-01-01T00:00:00Z"  # fixed, so the same package on the same base gives the same digest
)

MEDIA = {
    "oci": {
        "manifest": OCI_MANIFEST,
        "config": "application/vnd.oci.image.config.v1+json",
        "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
    "docker": {
        "manifest": DOCKER_MANIFEST,
        "config": "application/vnd.docker.container.image.v1+json",
        "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    },
}
_GZIP_LAYERS = {MEDIA["oci"]["layer"], MEDIA["docker"]["layer"]}


@dataclass(frozen=True)
class Layer:
    path: Path  # the compressed blob on disk
    digest: str  # sha256 of the compressed bytes
    diff_id: str  # sha256 of the uncompressed tar
    size: int


@dataclass
class BaseImage:
    repository: str | None
    digest: str | None
    config: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)  # descriptors


@dataclass(frozen=True)
class PushedImage:
    reference: str  # host/repo:tag
    repository: str
    tag: str
    digest: str  # manifest digest
    media_type: str
    config_digest: str
    layer_digest: str  # the package layer
    size: int  # manifest + config + layers
    manifest_size: int = 0  # bytes of the manifest itself


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _HashingWriter:
    """A write-only stream that hashes and counts what passes through (gzip and tarfile in
    stream mode call only write and flush)."""

    def __init__(self, out: _Writable):
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def build_package_layer(artifact: BinaryIO, workdir: str, dest_dir: Path) -> Layer:
    """Re-root the normalised package tar under ``workdir`` as a gzip layer blob in ``dest_dir``,
    computing the blob digest and the diff_id (uncompressed digest) in the same pass."""
    rel = workdir.strip("/")
    parts = rel.split("/")
    parents = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    fd, name = tempfile.mkstemp(dir=dest_dir, prefix="layer-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as raw_out:
            compressed = _HashingWriter(raw_out)
            with gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=cast(IO[bytes], compressed),
                mtime=0,
                compresslevel=6,
            ) as gz:
                uncompressed = _HashingWriter(gz)
                with (
                    tarfile.open(fileobj=artifact, mode="r|*") as src,
                    tarfile.open(
                        fileobj=cast(IO[bytes], uncompressed), mode="w|", format=tarfile.PAX_FORMAT
                    ) as out,
                ):
                    for p in parents:
                        ti = tarfile.TarInfo(p)
                        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
                        out.addfile(ti)
                    for ti in src:
                        ti.name = f"{rel}/{ti.name}"
                        out.addfile(ti, src.extractfile(ti) if ti.isreg() else None)
        return Layer(
            path,
            f"sha256:{compressed.hash.hexdigest()}",
            f"sha256:{uncompressed.hash.hexdigest()}",
            compressed.size,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def resolve_base(
    client: RegistryClient,
    base_image: str | None,
    *,
    os_name: str = "linux",
    architecture: str = "amd64",
) -> BaseImage:
    """Fetch the base image's manifest (choosing the platform from an index) and its config."""
    if not base_image or base_image == "scratch":
        return BaseImage(
            None,
            None,
            {
                "architecture": architecture,
                "os": os_name,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            },
        )
    ref = ImageRef.parse(base_image, field="base_image")
    if ref.host and ref.host != client.config.host:
        raise Invalid(
            f"base image {base_image!r} must be in the private registry {client.config.host} "
            "(mirror it there first)",
            field="base_image",
        )
    man = await client.get_manifest(ref.repository, ref.reference)
    doc = json.loads(man.body)
    if man.media_type in (OCI_INDEX, DOCKER_LIST) or doc.get("manifests"):
        chosen = next(
            (
                m
                for m in doc.get("manifests", [])
                if m.get("platform", {}).get("os") == os_name
                and m.get("platform", {}).get("architecture") == architecture
            ),
            None,
        )
        if chosen is None:
            raise Invalid(
                f"base image {base_image!r} has no {os_name}/{architecture} variant",
                field="base_image",
            )
        man = await client.get_manifest(ref.repository, chosen["digest"])
        doc = json.loads(man.body)
    if doc.get("schemaVersion") != 2 or "config" not in doc:
        raise Invalid(
            f"base image {base_image!r} uses an unsupported manifest format ({man.media_type})",
            field="base_image",
        )
    config = json.loads(await client.get_blob(ref.repository, doc["config"]["digest"]))
    if config.get("architecture", architecture) != architecture:
        raise Invalid(
            f"base image {base_image!r} is for {config.get('architecture')}, not {architecture}: "
            "push a multi-arch index of it (edgectl registry import-base)",
            field="base_image",
        )
    layers = list(doc.get("layers", []))
    if len(layers) != len(config.get("rootfs", {}).get("diff_ids", [])):
        raise UpstreamError(f"base image {base_image!r}: layers and diff_ids disagree")
    return BaseImage(ref.repository, man.digest, config, layers)


def image_config(
    base: BaseImage,
    manifest: PackageManifest,
    package_digest: str,
    layer: Layer,
    workdir: str,
    base_name: str | None,
) -> dict[str, Any]:
    cfg = json.loads(json.dumps(base.config))  # deep copy
    inner = dict(cfg.get("config") or {})
    env: dict[str, str] = {}
    for item in inner.get("Env") or []:
        k, _, v = item.partition("=")
        env[k] = v
    env.update(manifest.env)
    labels = dict(inner.get("Labels") or {})
    labels.update(
        {
            "org.edge-ai.filename": manifest.filename,
            "org.edge-ai.version": manifest.version,
            "org.edge-ai.ai_class": manifest.ai_class,
            "org.edge-ai.package-digest": package_digest,
            "org.opencontainers.image.title": manifest.repository,
            "org.opencontainers.image.version": manifest.version,
            "org.opencontainers.image.created": CREATED,
            "org.opencontainers.image.description": manifest.description
            or f"edge AI {manifest.filename} class {manifest.ai_class}",
        }
    )
    if manifest.condition:
        labels["org.edge-ai.condition"] = manifest.condition
    if base_name:
        labels["org.opencontainers.image.base.name"] = base_name
        labels["org.opencontainers.image.base.digest"] = base.digest or ""
    inner.update(
        {
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Entrypoint": list(manifest.command),
            "WorkingDir": workdir,
            "Labels": labels,
        }
    )
    # An inherited Cmd would be appended to our Entrypoint as arguments (python:* has ["python3"]).
    inner.pop("Cmd", None)
    cfg["config"] = inner
    cfg["created"] = CREATED
    cfg.setdefault("architecture", "amd64")
    cfg.setdefault("os", "linux")
    cfg["rootfs"] = {
        "type": "layers",
        "diff_ids": [*cfg.get("rootfs", {}).get("diff_ids", []), layer.diff_id],
    }
    cfg["history"] = [
        *cfg.get("history", []),
        {
            "created": CREATED,
            "created_by": f"edge-ai package {package_digest}",
            "comment": f"{manifest.filename} {manifest.version} class {manifest.ai_class}",
        },
    ]
    return cfg


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


async def _ensure_base_blobs(
    client: RegistryClient, repo: str, base: BaseImage, tmp_dir: Path
) -> None:
    if not base.repository or base.repository == repo:
        return
    for desc in base.layers:
        digest = desc["digest"]
        if await client.blob_exists(repo, digest):
            continue
        if await client.mount_blob(repo, digest, base.repository):
            continue
        blob = await asyncio.to_thread(_temp_file, tmp_dir, "base-")
        try:
            size = await client.download_blob(base.repository, digest, blob)
            await client.upload_blob(repo, digest, blob, size)
        finally:
            await asyncio.to_thread(blob.unlink, missing_ok=True)


def _temp_file(directory: Path, prefix: str) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
    os.close(fd)
    return Path(name)


async def build_and_push(
    client: RegistryClient,
    *,
    artifact_path: str | os.PathLike,
    manifest: PackageManifest,
    package_digest: str,
    base_image: str | None = None,
    workdir_root: str = WORKDIR_ROOT,
    media_types: Literal["oci", "docker"] = "oci",
    tmp_dir: str | os.PathLike | None = None,
    architecture: str = "amd64",
    by_digest: bool = False,
) -> PushedImage:
    """Assemble ``{registry}/{filename}-{ai_class}:{version}`` from the stored package and push it.
    Safe to repeat: blobs already present are skipped and the same inputs give the same digest."""
    media = MEDIA[media_types]
    ref = image_name(client.config.host, manifest.filename, manifest.ai_class, manifest.version)
    repo = ref.repository
    workdir = f"{workdir_root.rstrip('/')}/{manifest.filename}"
    work = Path(tempfile.mkdtemp(dir=tmp_dir, prefix="imgbuild-"))
    try:
        await client.ping()
        base = await resolve_base(client, base_image, architecture=architecture)

        def _layer() -> Layer:
            with open(artifact_path, "rb") as f:
                return build_package_layer(f, workdir, work)

        layer = await asyncio.to_thread(_layer)
        base_name = None if base.repository is None else str(ImageRef.parse(base_image or ""))
        config = image_config(base, manifest, package_digest, layer, workdir, base_name)
        config_bytes = _canonical(config)
        config_digest = sha256_digest(config_bytes)

        layers = []
        for desc in base.layers:
            mt = desc.get("mediaType", media["layer"])
            if mt in _GZIP_LAYERS:
                mt = media["layer"]  # same bytes, named in the manifest's own family
            elif media_types == "docker":
                raise Invalid(
                    f"base image layer type {mt} cannot go in a Docker v2 manifest; use OCI",
                    field="base_image",
                )
            layers.append({"mediaType": mt, "digest": desc["digest"], "size": desc["size"]})
        layers.append({"mediaType": media["layer"], "digest": layer.digest, "size": layer.size})

        await _ensure_base_blobs(client, repo, base, work)
        await client.upload_blob(repo, layer.digest, layer.path, layer.size)
        await client.upload_blob(repo, config_digest, config_bytes, len(config_bytes))

        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media["manifest"],
            "config": {
                "mediaType": media["config"],
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": layers,
        }
        if media_types == "oci":
            doc["annotations"] = {
                "org.opencontainers.image.created": CREATED,
                "org.edge-ai.package-digest": package_digest,
            }
            if base_name:
                doc["annotations"]["org.opencontainers.image.base.name"] = base_name
                doc["annotations"]["org.opencontainers.image.base.digest"] = base.digest or ""
        body = json.dumps(doc, separators=(",", ":")).encode()
        # by_digest: one architecture's manifest of an index, tagged through the index only.
        reference = sha256_digest(body) if by_digest else (ref.tag or manifest.version)
        digest = await client.put_manifest(repo, reference, body, media["manifest"])
        total = len(body) + len(config_bytes) + sum(d["size"] for d in layers)
        return PushedImage(
            str(ref),
            repo,
            ref.tag or manifest.version,
            digest,
            media["manifest"],
            config_digest,
            layer.digest,
            total,
            len(body),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def build_and_push_index(
    client: RegistryClient,
    *,
    architectures: list[str],
    media_types: Literal["oci", "docker"] = "oci",
    **kwargs: Any,
) -> PushedImage:
    """``build_and_push`` for every architecture (the base image's variant of each), tagged as
    one image index (OCI) or manifest list (Docker); one architecture: the plain image."""
    if len(architectures) == 1:
        return await build_and_push(
            client, architecture=architectures[0], media_types=media_types, **kwargs
        )
    images = [
        await build_and_push(
            client, architecture=arch, media_types=media_types, by_digest=True, **kwargs
        )
        for arch in architectures
    ]
    index_type = OCI_INDEX if media_types == "oci" else DOCKER_LIST
    doc = {
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [
            {
                "mediaType": img.media_type,
                "digest": img.digest,
                "size": img.manifest_size,
                "platform": {"os": "linux", "architecture": arch},
            }
            for arch, img in zip(architectures, images, strict=True)
        ],
    }
    body = json.dumps(doc, separators=(",", ":")).encode()
    first = images[0]
    digest = await client.put_manifest(first.repository, first.tag, body, index_type)
    return PushedImage(
        first.reference,
        first.repository,
        first.tag,
        digest,
        index_type,
        first.config_digest,
        first.layer_digest,
        sum(i.size for i in images) + len(body),
        len(body),
    )


async def delete_image(client: RegistryClient, image: str, digest: str | None = None) -> str:
    """Delete an image's manifest by digest (resolving the tag when no digest is given).
    Returns "deleted", "not_found" or "not_allowed" (the registry has deletion disabled):
    the caller records the outcome and goes on removing the AI either way."""
    ref = ImageRef.parse(image)
    if digest is None:
        digest = ref.digest or await client.manifest_digest(ref.repository, ref.reference)
        if digest is None:
            return "not_found"
    return await client.delete_manifest(ref.repository, digest)
