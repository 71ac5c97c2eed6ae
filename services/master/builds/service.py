"""The build pipeline: find the package -> validate and store it -> build the image -> push ->
tell setup.

Setup owns the AI row; each step is reported there (``building`` with the package digest and
manifest, then ``ready`` with the image, or ``failed`` with the reason). Every step is idempotent:
the same package gives the same digest and the same image, so a build interrupted by a crash is
simply run again (the reconcile pass restarts builds left in ``uploaded``/``building``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import Depends

from services.master.builds import engine, field_folder, repository
from services.master.context import MasterContext
from services.master.models import BuildState
from services.master.packages import (
    MANIFEST_NAMES,
    IngestedPackage,
    PackageManifest,
    ingest_package,
    parse_manifest,
    with_wheel_platforms,
)
from services.master.registry import RegistryClient
from services.master.registry.docker_build import docker_build_and_push
from services.master.registry.image import build_and_push_index
from shared.contracts.events import Event, EventType
from shared.contracts.fleet import PackageStatus
from shared.contracts.master import AiPackageChange, AiPackageRecord
from shared.deps import from_app_state
from shared.errors import DomainError, Invalid, NotFound, Unavailable

log = logging.getLogger("edge.master.builds")

ARCHIVE_SUFFIXES = ("", ".tar.gz", ".tgz", ".zip")


@dataclass(frozen=True)
class ResolvedPackage:
    digest: str
    size: int
    manifest: PackageManifest


def package_dir_candidates(
    package_dir: Path, filename: str, ai_class: str, version: str
) -> list[Path]:
    """Where the field's package for these names may sit: a versioned folder/archive first
    (several versions side by side), then the plain folder named ``filename`` as in the field."""
    stems = [f"{filename}-{ai_class}-{version}", f"{filename}-{version}", filename]
    return [package_dir / f"{stem}{suffix}" for stem in stems for suffix in ARCHIVE_SUFFIXES]


def _read_manifest_sync(path: Path) -> PackageManifest:
    with tarfile.open(path, "r:*") as tf:
        for name in MANIFEST_NAMES:
            try:
                member = tf.getmember(name)
            except KeyError:
                continue
            f = tf.extractfile(member)
            if f is not None:
                return with_wheel_platforms(parse_manifest(f.read(), name), tf.getnames())
    raise Invalid(f"the stored artifact {path.name} has no manifest", field="manifest")


def manifest_json(manifest: PackageManifest) -> dict[str, Any]:
    return manifest.model_dump(mode="json")


class BuildRunner:
    """Runs builds in the background, one at a time per AI (a second request while one runs is
    answered by the running one, which reads setup's latest row). Every task is tracked, and
    cancelled and awaited on shutdown."""

    def __init__(self, ctx: MasterContext):
        self.ctx = ctx
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._cancelled: set[int] = set()
        self.logs = engine.BuildLogs(Path(ctx.settings.artifact_dir) / "build-logs")

    def in_flight(self) -> set[int]:
        return set(self._tasks)

    def kick(self, ai_id: int) -> bool:
        """Start a build of AI ``ai_id`` unless one is under way; True when one was started."""
        if ai_id in self._tasks:
            return False
        task = asyncio.create_task(self._run(ai_id), name=f"build-{ai_id}")
        self._tasks[ai_id] = task
        task.add_done_callback(lambda _task: self._tasks.pop(ai_id, None))
        return True

    async def wait(self, ai_id: int) -> None:
        task = self._tasks.get(ai_id)
        if task is not None:
            await asyncio.shield(task)

    async def cancel(self, ai_id: int) -> bool:
        """Stop the build of AI ``ai_id`` (its builder process too); the AI is failed with the
        reason "cancelled". False when none runs."""
        task = self._tasks.get(ai_id)
        if task is None:
            return False
        self._cancelled.add(ai_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, ai_id: int) -> None:
        try:
            await self.build(ai_id)
        except asyncio.CancelledError:
            if ai_id in self._cancelled:  # the operator's cancel, not a shutdown
                self._cancelled.discard(ai_id)
                await self._failed(ai_id, Invalid("the build was cancelled", field="build"))
            raise
        except Exception:
            log.exception("build of AI %s failed unexpectedly", ai_id)

    # --- the pipeline -------------------------------------------------------------------
    async def build(self, ai_id: int) -> AiPackageRecord | None:
        ctx = self.ctx
        try:
            ai = await ctx.setup.get_ai(ai_id)
        except NotFound:
            log.warning("build of AI %s asked, but setup has no such AI", ai_id)
            return None
        if ai.status == PackageStatus.REMOVED or self._already_built(ai):
            return ai
        async with ctx.sessionmaker.begin() as session:
            await repository.start_job(session, ai_id)
        try:
            package = await self.resolve_package(ai)
            await ctx.setup.patch_ai(ai_id, _building(ai, package))
            image = AiPackageChange()
            if ctx.registry is not None:
                with self.logs.start(ai_id) as build_log:
                    image = await self.push_image(package, build_log)
            image.status = PackageStatus.READY
            ai = await ctx.setup.patch_ai(ai_id, image)
        except Unavailable as exc:
            await self._interrupted(ai_id, exc)
            return None
        except DomainError as exc:
            return await self._failed(ai_id, exc)
        await self._finish(
            ai_id,
            BuildState.READY,
            package_digest=package.digest,
            image_ref=ai.image_ref,
            image_digest=ai.image_digest,
        )
        log.info("AI %s ready (%s %s class %s)", ai_id, ai.filename, ai.version, ai.ai_class)
        ctx.optimizer.send(Event(type=EventType.AI_READY, ai_id=ai_id))
        return ai

    async def _interrupted(self, ai_id: int, exc: Unavailable) -> None:
        """Setup (or the registry) is down: the row stays as it is; the reconcile pass retries."""
        await self._finish(ai_id, BuildState.FAILED, reason=exc.message)
        log.warning(
            "build of AI %s interrupted, retried by the next reconcile pass: %s", ai_id, exc.message
        )
        with contextlib.suppress(DomainError):
            change = AiPackageChange(failure_reason=f"will retry: {exc.message}"[:4000])
            await self.ctx.setup.patch_ai(ai_id, change)

    async def _failed(self, ai_id: int, exc: DomainError) -> AiPackageRecord | None:
        """The package or its image is refused for good: the AI is failed, with the reason."""
        named = exc.field and exc.field not in exc.message
        reason = f"{exc.field}: {exc.message}" if named else exc.message
        await self._finish(ai_id, BuildState.FAILED, reason=reason)
        log.warning("build of AI %s failed: %s", ai_id, reason)
        change = AiPackageChange(status=PackageStatus.FAILED, failure_reason=reason[:4000])
        try:
            return await self.ctx.setup.patch_ai(ai_id, change)
        except DomainError:
            return None

    def _already_built(self, ai: AiPackageRecord) -> bool:
        if ai.status != PackageStatus.READY or not ai.package_digest:
            return False
        if not self.ctx.store.exists(ai.package_digest):
            return False
        return self.ctx.registry is None or bool(ai.image_ref)

    async def _finish(self, ai_id: int, state: BuildState, **fields: Any) -> None:
        try:
            async with self.ctx.sessionmaker.begin() as session:
                await repository.finish_job(session, ai_id, state=state, **fields)
        except Exception:  # the record is informative; never mask the build's outcome
            log.exception("could not record the build of AI %s", ai_id)

    async def resolve_package(self, ai: AiPackageRecord) -> ResolvedPackage:
        """The AI's package in the artifact store: the digest setup knows, an upload under the same
        names, or the package folder/archive in MASTER_PACKAGE_DIR (validated and stored now)."""
        ctx = self.ctx
        filename, ai_class, version = ai.filename, ai.ai_class, ai.version
        digest = ai.package_digest
        if digest and ctx.store.exists(digest):
            if ai.manifest:
                manifest = PackageManifest.model_validate(ai.manifest)
            else:
                manifest = await asyncio.to_thread(_read_manifest_sync, ctx.store.path(digest))
            return ResolvedPackage(digest, ctx.store.size(digest), manifest)
        async with ctx.sessionmaker() as session:
            upload = await repository.find_upload(session, filename, ai_class, version)
        if upload is not None and ctx.store.exists(upload.package_digest):
            manifest = PackageManifest.model_validate(upload.manifest)
            return ResolvedPackage(upload.package_digest, upload.package_size, manifest)
        package_dir = ctx.settings.package_dir
        for candidate in package_dir_candidates(package_dir, filename, ai_class, version):
            if candidate.exists():
                expected = {"filename": filename, "version": version, "ai_class": ai_class}
                # A field folder (Dockerfile, no manifest) gets one derived from these names.
                async with field_folder.with_manifest(
                    candidate,
                    ctx.store.tmp_dir,
                    ctx.limits,
                    filename=filename,
                    version=version,
                    ai_class=ai_class,
                ) as source:
                    ingested = await ingest_and_record(ctx, source, expected, source="folder")
                return ResolvedPackage(ingested.digest, ingested.size, ingested.manifest)
        raise Invalid(
            f"no package for {filename} {version} class {ai_class}: upload an archive "
            f"(POST /ai-packages) or put the package folder {filename!r} in the master's "
            "package directory",
            field="filename",
        )

    async def _dockerfile(self, package: ResolvedPackage) -> str | None:
        path = self.ctx.store.path(package.digest)
        return await asyncio.to_thread(read_stored_dockerfile, path, package.manifest)

    async def push_image(self, package: ResolvedPackage, build_log: IO[str]) -> AiPackageChange:
        """Build the image and push it; answers setup's image fields.

        The builder (MASTER_BUILDER) carries out the package's Dockerfile: buildah on this
        machine, or the Docker Engine API at MASTER_DOCKER_HOST; the engine-free layer builder
        assembles the image on the base image when the package has no Dockerfile or one it can
        build exactly (anything else is refused naming the line). ``build_log`` gets the output.
        """
        ctx = self.ctx
        assert ctx.registry is not None
        s = ctx.settings
        kind = engine.builder_kind(s)
        m = package.manifest
        if m.dockerfile and kind == engine.BuilderKind.BUILDAH:
            built = await engine.buildah_build_and_push(
                settings=s,
                store=ctx.store,
                package_digest=package.digest,
                manifest=m,
                registry=ctx.registry,
                log=build_log,
            )
            return AiPackageChange(image_ref=built.reference, image_digest=built.digest)
        if m.dockerfile and kind == engine.BuilderKind.DOCKER:
            if not s.docker_host:
                raise Unavailable("MASTER_BUILDER=docker needs MASTER_DOCKER_HOST")
            text = await asyncio.to_thread(
                read_stored_dockerfile, ctx.store.path(package.digest), m
            )
            await engine.check_dockerfile(s, ctx.registry, m, text)
            built_d = await docker_build_and_push(
                docker_host=s.docker_host,
                store=ctx.store,
                package_digest=package.digest,
                manifest=m,
                registry=ctx.registry,
                timeout_s=int(s.build_timeout_s),
                log=build_log,
                platform=f"linux/{s.build_architectures[0]}",
            )
            return AiPackageChange(image_ref=built_d.reference, image_digest=built_d.digest)
        if m.dockerfile:
            text = await asyncio.to_thread(
                read_stored_dockerfile, ctx.store.path(package.digest), m
            )
            await engine.check_dockerfile(s, ctx.registry, m, text)
        base = s.base_image or "scratch"
        build_log.write(f"assembling the image with the layer builder on {base}\n")
        async with RegistryClient(ctx.registry) as registry:
            pushed = await build_and_push_index(
                registry,
                architectures=s.build_architectures,
                artifact_path=ctx.store.path(package.digest),
                manifest=m,
                package_digest=package.digest,
                base_image=s.base_image,
                media_types=s.image_media_types,
                tmp_dir=ctx.store.tmp_dir,
            )
        build_log.write(f"pushed {pushed.reference} {pushed.digest}\n")
        return AiPackageChange(image_ref=pushed.reference, image_digest=pushed.digest)


def read_stored_dockerfile(path: Path, manifest: PackageManifest) -> str | None:
    """The Dockerfile named by the manifest, read from the stored package (a tar)."""
    if not manifest.dockerfile:
        return None
    with tarfile.open(path, "r:*") as tf:
        try:
            f = tf.extractfile(manifest.dockerfile)
        except KeyError:
            f = None
        if f is None:
            raise Invalid(
                f"{manifest.dockerfile} named in the manifest is not in the package",
                field="manifest.dockerfile",
            )
        return f.read().decode("utf-8", errors="replace")


async def check_stored_package(ctx: MasterContext, ingested: IngestedPackage) -> None:
    """Refuse a stored package this master cannot build as its Dockerfile says (Invalid naming the
    line); the caller removes what it stored."""
    if ctx.registry is None or not ingested.manifest.dockerfile:
        return
    text = await asyncio.to_thread(
        read_stored_dockerfile, ctx.store.path(ingested.digest), ingested.manifest
    )
    await engine.check_dockerfile(ctx.settings, ctx.registry, ingested.manifest, text)


def _building(ai: AiPackageRecord, package: ResolvedPackage) -> AiPackageChange:
    """The row while its image is built: the package's digest and manifest, and the manifest's
    condition and description where the row has none."""
    change = AiPackageChange(
        status=PackageStatus.BUILDING,
        failure_reason=None,
        package_digest=package.digest,
        package_size=package.size,
        manifest=manifest_json(package.manifest),
    )
    if not ai.condition and package.manifest.condition:
        change.condition = package.manifest.condition
    if not ai.description and package.manifest.description:
        change.description = package.manifest.description[:2000]
    return change


async def ingest_and_record(
    ctx: MasterContext, path: Path, expected: Mapping[str, str | None], *, source: str
) -> IngestedPackage:
    """Validate and store a package, then remember it under its names (nothing stored if
    invalid)."""
    ingested = await ingest_package(path, ctx.store, limits=ctx.limits, expected=expected)
    await record_ingested(ctx, ingested, source=source)
    return ingested


async def record_ingested(ctx: MasterContext, ingested: IngestedPackage, *, source: str) -> None:
    """The stored package under its names, committed at once: a build asked for by setup (in
    another request) must find it."""
    m = ingested.manifest
    async with ctx.sessionmaker.begin() as session:
        await repository.record_upload(
            session,
            filename=m.filename,
            ai_class=m.ai_class,
            version=m.version,
            digest=ingested.digest,
            size=ingested.size,
            manifest=manifest_json(m),
            source=source,
        )


BuildRunnerDep = Annotated[BuildRunner, Depends(from_app_state("builds", BuildRunner))]
