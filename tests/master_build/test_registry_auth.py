"""Pushing to registries that want credentials: htpasswd Basic auth, and the Bearer token flow
(WWW-Authenticate challenge -> token realm -> JWT the registry verifies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.master.packages import ArtifactStore, ingest_package
from services.master.registry import (
    RegistryAuthError,
    RegistryClient,
    RegistryConfig,
    build_and_push,
    delete_image,
)
from tests.helpers.registry import SkopeoError, skopeo_inspect, start_registry

from .conftest import REGISTRY_USERS, make_targz, package_files
from .token_server import TokenServer

USER, PASSWORD = next(iter(REGISTRY_USERS.items()))


async def _package(tmp_path: Path, store: ArtifactStore):
    return await ingest_package(make_targz(tmp_path / "p.tar.gz", package_files()), store)


async def test_basic_auth_push_inspect_delete(auth_registry, tmp_path: Path, store: ArtifactStore):
    pkg = await _package(tmp_path, store)
    config = RegistryConfig(url=auth_registry.url, username=USER, password=PASSWORD)
    async with RegistryClient(config) as reg:
        pushed = await build_and_push(
            reg,
            artifact_path=store.path(pkg.digest),
            manifest=pkg.manifest,
            package_digest=pkg.digest,
        )
        info = skopeo_inspect(pushed.reference, creds=f"{USER}:{PASSWORD}")
        assert info["Digest"] == pushed.digest
        with pytest.raises(SkopeoError):  # the registry really is closed to anonymous clients
            skopeo_inspect(pushed.reference)
        assert await delete_image(reg, pushed.reference) == "deleted"


async def test_basic_auth_wrong_or_missing_credentials(
    auth_registry, tmp_path: Path, store: ArtifactStore
):
    pkg = await _package(tmp_path, store)
    wrong = RegistryConfig(url=auth_registry.url, username=USER, password="not-the-password")
    async with RegistryClient(wrong) as reg:
        with pytest.raises(RegistryAuthError) as exc:
            await build_and_push(
                reg,
                artifact_path=store.path(pkg.digest),
                manifest=pkg.manifest,
                package_digest=pkg.digest,
            )
    assert "refused" in exc.value.message and "not-the-password" not in exc.value.message
    async with RegistryClient(RegistryConfig(url=auth_registry.url)) as reg:
        with pytest.raises(RegistryAuthError) as exc:
            await reg.ping()
    assert (
        exc.value.message
        == f"the registry {auth_registry.host} requires credentials and none are configured"
    )


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(workdir, REGISTRY_USERS).start()
    reg = start_registry(workdir / "registry", auth=tokens.registry_auth())
    yield reg, tokens
    reg.stop()
    tokens.stop()


async def test_bearer_token_flow(token_registry, tmp_path: Path, store: ArtifactStore):
    reg_proc, tokens = token_registry
    pkg = await _package(tmp_path, store)
    config = RegistryConfig(url=reg_proc.url, username=USER, password=PASSWORD)
    async with RegistryClient(config) as reg:
        pushed = await build_and_push(
            reg,
            artifact_path=store.path(pkg.digest),
            manifest=pkg.manifest,
            package_digest=pkg.digest,
        )
        # an independent client following the same token flow sees the image
        assert (
            skopeo_inspect(pushed.reference, creds=f"{USER}:{PASSWORD}")["Digest"] == pushed.digest
        )
        assert await delete_image(reg, pushed.reference, pushed.digest) == "deleted"
    ours = [r for r in tokens.requests if r.get("user") == USER and not r.get("refused")]
    scopes = {s for r in ours for s in r["scopes"]}
    assert "repository:monitoring-01:pull,push" in scopes
    assert "repository:monitoring-01:delete" in scopes
    assert all(r["service"] == "edge-test-registry" for r in ours)


async def test_bearer_token_wrong_password(token_registry, tmp_path: Path, store: ArtifactStore):
    reg_proc, _ = token_registry
    async with RegistryClient(
        RegistryConfig(url=reg_proc.url, username=USER, password="wrong-password")
    ) as reg:
        with pytest.raises(RegistryAuthError) as exc:
            await reg.blob_exists("monitoring-01", "sha256:" + "0" * 64)
    assert exc.value.message == "the registry's token service refused the credentials (401)"


async def test_bearer_anonymous_token_grants_nothing(token_registry):
    reg_proc, _ = token_registry
    async with RegistryClient(RegistryConfig(url=reg_proc.url)) as reg:
        with pytest.raises(RegistryAuthError) as exc:
            await reg.put_manifest(
                "monitoring-01", "x", b"{}", "application/vnd.oci.image.manifest.v1+json"
            )
    assert "refused PUT /v2/monitoring-01/manifests/x (401)" in exc.value.message


async def test_credentials_go_to_a_plain_http_realm_only_when_trusted(
    tmp_path: Path, store: ArtifactStore
):
    """A registry whose challenge names a realm on another host (here "localhost" against a
    registry addressed as 127.0.0.1) gets no password unless that host is listed."""
    tokens = TokenServer(tmp_path, REGISTRY_USERS).start()
    auth = tokens.registry_auth()
    auth["token"]["realm"] = tokens.realm.replace("127.0.0.1", "localhost")
    reg_proc = start_registry(tmp_path / "registry", auth=auth)
    try:
        pkg = await _package(tmp_path, store)
        untrusted = RegistryConfig(url=reg_proc.url, username=USER, password=PASSWORD)
        async with RegistryClient(untrusted) as reg:
            with pytest.raises(RegistryAuthError):
                await build_and_push(
                    reg,
                    artifact_path=store.path(pkg.digest),
                    manifest=pkg.manifest,
                    package_digest=pkg.digest,
                )
        assert tokens.requests and all(r["user"] is None for r in tokens.requests)

        trusted = RegistryConfig(
            url=reg_proc.url, username=USER, password=PASSWORD, token_realm_hosts=("localhost",)
        )
        async with RegistryClient(trusted) as reg:
            pushed = await build_and_push(
                reg,
                artifact_path=store.path(pkg.digest),
                manifest=pkg.manifest,
                package_digest=pkg.digest,
            )
        assert pushed.digest and tokens.requests[-1]["user"] == USER
    finally:
        reg_proc.stop()
        tokens.stop()
