"""A site's own copy of every package its clusters run.

A package is built once (by the default master, or by the master it was uploaded to). Each
site's master, before handing a workload to its runtimes, makes sure that

1. the archive is in its own artifact store (its agents fetch it from here): when it is not, it
   is copied by digest from another master (GET /artifacts/sha256:<hex>, with this master's
   credential) and verified against the digest;
2. with a registry configured (MASTER_REGISTRY_URL, the site's registry), the image is there:
   built from the archive and pushed (the same package always gives the same image), under the
   site registry's own name ``{site registry}/{filename}-{ai_class}:{version}``, which is the
   image this site's Kubernetes and Docker runtimes pull. It is assembled by the layer builder:
   a package whose Dockerfile needs a real builder (RUN ...) stays pending with that reason.

What cannot be copied or pushed now (no master has the archive, the registry refuses or is down)
blocks only the deployments of that AI on this site, with the reason: nothing is half-deployed,
and the next pass tries again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.master.builds.service import ResolvedPackage, read_stored_dockerfile
from services.master.context import MasterContext
from services.master.packages import PackageManifest
from services.master.registry import RegistryClient, build_and_push, image_name
from services.master.registry.dockerfile import layer_builder_refusal
from shared.contracts.fleet import FleetPackage
from shared.contracts.fleet import ObservedState as Observed
from shared.errors import DomainError, Unavailable, UpstreamError
from shared.service_client import ServiceClient, domain_error_for

log = logging.getLogger("edge.master.sites")


@dataclass(frozen=True)
class SiteProblem:
    """Why an AI cannot run on this site now, and what its deployments report."""

    observed: Observed
    reason: str


class SiteCopies:
    def __init__(self, ctx: MasterContext):
        self.ctx = ctx
        # (ai id, package digest) -> the site's image reference ("" without a registry).
        self._ready: dict[tuple[int, str], str] = {}
        self.problems: dict[int, SiteProblem] = {}  # by AI id, as of the last pass

    def site_image(self, ai: FleetPackage) -> str | None:
        digest = ai.get("package_digest")
        return self._ready.get((ai["id"], digest)) if digest else None

    async def ensure(self, ais: list[FleetPackage], manifests: dict[int, dict]) -> None:
        """Make each AI's archive (and image) present on this site; ``problems`` says which
        could not be, and why."""
        self.problems = {}
        for ai in ais:
            digest = ai.get("package_digest")
            if not digest or (ai["id"], digest) in self._ready:
                continue
            try:
                await self._copy_archive(digest)
                ref = await self._push_image(ai, digest, manifests.get(ai["id"]))
            except DomainError as exc:
                # Pending, never failed: what runs now keeps running (nothing half-deployed),
                # and the next pass tries again.
                self.problems[ai["id"]] = SiteProblem(Observed.PENDING, exc.message)
                log.warning("AI %s cannot run on this site yet: %s", ai["id"], exc.message)
                continue
            self._ready[(ai["id"], digest)] = ref

    def forget(self, ai_id: int) -> None:
        for key in [k for k in self._ready if k[0] == ai_id]:
            del self._ready[key]

    # --- the archive --------------------------------------------------------------------
    async def _copy_archive(self, digest: str) -> None:
        store = self.ctx.store
        if store.exists(digest):
            return
        s = self.ctx.settings
        peers = [s.master_url.rstrip("/")]
        try:
            peers += [
                m.url.rstrip("/") for m in await self.ctx.setup.masters() if m.state == "live"
            ]
        except DomainError as exc:
            log.info("masters not listed (%s): asking the default master only", exc.message)
        tried: list[str] = []
        for url in dict.fromkeys(p for p in peers if p != s.own_url):
            try:
                await self._fetch(url, digest)
                log.info("package %s copied from the master at %s", digest, url)
                return
            except DomainError as exc:
                tried.append(f"{url}: {exc.message}")
        raise Unavailable(
            f"package {digest} is on no reachable master ({'; '.join(tried) or 'no other master'})"
        )

    async def _fetch(self, url: str, digest: str) -> None:
        """Stream the archive into the store; kept only when its bytes have the digest."""
        s = self.ctx.settings
        client = ServiceClient(
            "master (peer)", url, token=s.own_credential() or None, timeout=s.agent_timeout_s
        )
        try:
            async with client.http.stream("GET", f"/artifacts/{digest}") as response:
                if response.status_code != 200:
                    await response.aread()
                    raise domain_error_for(response, f"the master at {url}")
                with self.ctx.store.writer() as w:
                    total = 0
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)
                        if total > s.max_upload_bytes:
                            raise Unavailable(f"package {digest} from {url} is over the limit")
                        w.write(chunk)
                    stored = w.commit()
                if stored.digest != digest:
                    self.ctx.store.delete(stored.digest)
                    raise Unavailable(f"the master at {url} sent other bytes than {digest}")
        except DomainError:
            raise
        except Exception as exc:  # transport failures
            raise Unavailable(f"the master at {url} unreachable ({type(exc).__name__})") from exc
        finally:
            await client.aclose()

    # --- the image ----------------------------------------------------------------------
    async def _push_image(self, ai: FleetPackage, digest: str, manifest: dict | None) -> str:
        registry = self.ctx.registry
        if registry is None:
            return ""
        ref = image_name(registry.host, ai["filename"], ai["ai_class"], ai["version"])
        async with RegistryClient(registry) as client:
            present = await client.manifest_digest(ref.repository, ref.tag or ai["version"])
            if present is not None and ref.host == _host(ai.get("image_ref")):
                return str(ref)  # the build master's own push
            if present is not None and present == await self._expected(ai):
                return str(ref)
            if manifest is None:
                raise Unavailable(f"the manifest of AI {ai['id']} is not known yet")
            package = ResolvedPackage(
                digest, self.ctx.store.size(digest), PackageManifest.model_validate(manifest)
            )
            s = self.ctx.settings
            # The site's image is assembled by the layer builder: never one that skips a step.
            text = await asyncio.to_thread(
                read_stored_dockerfile, self.ctx.store.path(digest), package.manifest
            )
            refusal = layer_builder_refusal(text, package.manifest) if text else None
            if refusal:
                raise UpstreamError(
                    f"the image of AI {ai['id']} cannot be assembled for the site registry "
                    f"{registry.host}: {refusal}"
                )
            try:
                pushed = await build_and_push(
                    client,
                    artifact_path=self.ctx.store.path(digest),
                    manifest=package.manifest,
                    package_digest=digest,
                    base_image=s.base_image,
                    media_types=s.image_media_types,
                    tmp_dir=self.ctx.store.tmp_dir,
                    architecture=s.image_architecture,
                )
            except Unavailable as exc:
                raise Unavailable(
                    f"the site registry {registry.host} is unavailable: {exc.message}"
                ) from exc
            except DomainError as exc:
                raise UpstreamError(
                    f"the site registry {registry.host} refused the image of AI {ai['id']}: "
                    f"{exc.message}"
                ) from exc
        log.info(
            "AI %s pushed to the site registry as %s (%s)",
            ai["id"],
            pushed.reference,
            pushed.digest,
        )
        return pushed.reference

    async def _expected(self, ai: FleetPackage) -> str | None:
        """The image digest setup holds for the AI (the build master's push)."""
        try:
            return (await self.ctx.setup.get_ai(ai["id"])).image_digest
        except DomainError:
            return None


def _host(ref: str | None) -> str | None:
    return ref.split("/", 1)[0] if ref and "/" in ref else None
