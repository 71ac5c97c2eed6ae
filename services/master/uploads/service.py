"""Uploads: the body streamed to a file on disk, validated and stored, then recorded in setup.

Order matters for "nothing half-written": the package is validated before anything is stored
(an invalid one leaves neither an artifact nor a row), and the AI row is created in setup only
once the package is safely in the store, so a build that setup asks for always finds it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from services.master.builds import repository
from services.master.builds.service import (
    BuildRunner,
    check_stored_package,
    manifest_json,
    package_dir_candidates,
    record_ingested,
)
from services.master.context import MasterContext
from services.master.models import BuildState
from services.master.packages import IngestedPackage, ingest_package
from services.master.uploads.schemas import UploadFields
from shared.contracts.fleet import PackageStatus
from shared.contracts.master import AiPackageChange, AiPackageNew, AiPackageRecord, UploadAccepted
from shared.errors import Conflict, Invalid, PayloadTooLarge

log = logging.getLogger("edge.master.uploads")

WRITE_BUFFER = 1 << 20
FILE_FIELDS = ("archive", "file", "package")


def _fields(data: dict[str, Any]) -> UploadFields:
    try:
        return UploadFields.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise Invalid(f"{field}: {err['msg']}", field=field) from None


async def receive_body(
    request: Request, tmp_dir: Path, max_bytes: int
) -> tuple[Path, UploadFields]:
    """Write the upload to ``tmp_dir`` as it arrives: a raw body (zip or tar.gz, names in the
    query string) or a multipart form with the archive in the field ``archive``."""
    path = tmp_dir / f"upload-{uuid.uuid4().hex}"
    content_type = request.headers.get("content-type", "")
    data: dict[str, Any] = dict(request.query_params)
    try:
        if content_type.startswith("multipart/form-data"):
            size = await _receive_form(request, path, data)
        else:
            size = await _receive_stream(request, path, max_bytes)
        if size == 0:
            raise Invalid(
                "the upload is empty: send the package archive (zip or tar.gz) as the body",
                field="archive",
            )
        if size > max_bytes:
            raise PayloadTooLarge(
                f"the upload is over the limit of {max_bytes} bytes", field="archive"
            )
        return path, _fields(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def _receive_form(request: Request, path: Path, data: dict[str, Any]) -> int:
    """The form's file into ``path`` (Starlette spools file parts to disk past 1 MiB; the bytes
    are moved into our file); its text fields into ``data``. Answers the size."""
    form = await request.form(max_files=1, max_fields=20)
    try:
        files = [form.get(k) for k in FILE_FIELDS] + list(form.values())
        upload = next((f for f in files if isinstance(f, UploadFile)), None)
        if upload is None:
            raise Invalid(
                "the form has no file: send the package archive in the field 'archive'",
                field="archive",
            )
        data.update({k: v for k, v in form.items() if isinstance(v, str)})
        return await asyncio.to_thread(_copy_file, upload.file, path)
    finally:
        await form.close()


def _copy_file(source: BinaryIO, path: Path) -> int:
    source.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(source, out, WRITE_BUFFER)
        return out.tell()


async def _receive_stream(request: Request, path: Path, max_bytes: int) -> int:
    """The raw body into ``path``, refused past ``max_bytes``; answers the size."""
    size = 0
    buffer = bytearray()
    out = await asyncio.to_thread(open, path, "wb")
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"the upload is over the limit of {max_bytes} bytes", field="archive"
                )
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER:
                await asyncio.to_thread(out.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(out.write, bytes(buffer))
    finally:
        await asyncio.to_thread(out.close)
    return size


async def accept(
    ctx: MasterContext, builds: BuildRunner, source: Path, fields: UploadFields, *, kind: str
) -> UploadAccepted:
    """Validate and store the package at ``source``, record the AI in setup and queue its build."""
    expected = {"filename": fields.filename, "version": fields.version, "ai_class": fields.ai_class}
    ingested = await ingest_and_record_checked(ctx, source, expected, kind=kind)
    ai = await _record_in_setup(ctx, ingested, fields)
    started = builds.kick(ai.id)
    if ai.status == PackageStatus.READY:
        build = BuildState.READY
    else:
        build = BuildState.QUEUED if started else BuildState.RUNNING
    return UploadAccepted(
        ai=ai,
        package_digest=ingested.digest,
        package_size=ingested.size,
        stored=ingested.created,
        build=build,
    )


async def _record_in_setup(
    ctx: MasterContext, ingested: IngestedPackage, fields: UploadFields
) -> AiPackageRecord:
    """The AI row in setup for this package: created, reused, or given the new package."""
    m = ingested.manifest
    existing = await ctx.setup.find_ai(m.filename, m.ai_class, m.version)
    if existing is None:
        return await _create_in_setup(ctx, ingested, fields)
    if existing.status in _HAS_PACKAGE and existing.package_digest == ingested.digest:
        return existing  # the same package again: nothing to do
    # A failed or never-built row takes the new package (other cases were refused before).
    change = AiPackageChange(
        status=PackageStatus.UPLOADED,
        failure_reason=None,
        package_digest=ingested.digest,
        package_size=ingested.size,
        manifest=manifest_json(m),
    )
    return await ctx.setup.patch_ai(existing.id, change)


async def _create_in_setup(
    ctx: MasterContext, ingested: IngestedPackage, fields: UploadFields
) -> AiPackageRecord:
    """A new AI row; when setup refuses it, what this upload recorded and stored is undone."""
    m = ingested.manifest
    description = fields.description if fields.description is not None else m.description
    body = AiPackageNew(
        filename=m.filename,
        version=m.version,
        ai_class=m.ai_class,
        condition=fields.condition or m.condition,
        description=description[:2000],
    )
    try:
        return await ctx.setup.create_ai(body)
    except Conflict:  # created meanwhile by another upload of the same names
        ai = await ctx.setup.find_ai(m.filename, m.ai_class, m.version)
        if ai is None:
            await _forget_upload(ctx, ingested)
            raise
        return ai
    except Exception:
        await _forget_upload(ctx, ingested)
        raise


async def _forget_upload(ctx: MasterContext, ingested: IngestedPackage) -> None:
    """Remove this upload's record (names and digest) and its artifact unless still used."""
    m = ingested.manifest
    async with ctx.sessionmaker.begin() as session:
        await repository.forget_upload(
            session, m.filename, m.ai_class, m.version, digest=ingested.digest
        )
    await _drop_if_unused(ctx, ingested)


async def ingest_and_record_checked(
    ctx: MasterContext, source: Path, expected: Mapping[str, str | None], *, kind: str
) -> IngestedPackage:
    """Refuse, before recording anything, an upload whose names belong to an AI that has its
    own package.

    The record is committed before setup hears of the AI (see ``record_ingested``)."""
    ingested = await ingest_package(source, ctx.store, limits=ctx.limits, expected=expected)
    try:  # a Dockerfile this master cannot carry out is refused before anything is recorded
        await check_stored_package(ctx, ingested)
    except Exception:
        await _drop_if_unused(ctx, ingested)
        raise
    m = ingested.manifest
    existing = await ctx.setup.find_ai(m.filename, m.ai_class, m.version)
    if existing is not None and _taken(existing, ingested.digest):
        await _drop_if_unused(ctx, ingested)
        if existing.status == PackageStatus.REMOVED:
            state = "was removed"
        else:
            state = f"is {existing.status} with another package"
        raise Conflict(
            f"{m.filename} {m.version} class {m.ai_class} {state} (AI {existing.id}); "
            "upload it as a new version",
            field="version",
        )
    await record_ingested(ctx, ingested, source=kind)
    return ingested


# A row in these states has its own package; another one under its names is refused.
_HAS_PACKAGE = (PackageStatus.READY, PackageStatus.BUILDING)


def _taken(existing: AiPackageRecord, digest: str) -> bool:
    """The names belong to a removed AI, or to one that has another package."""
    if existing.status == PackageStatus.REMOVED:
        return True
    return existing.status in _HAS_PACKAGE and existing.package_digest not in (None, digest)


async def _drop_if_unused(ctx: MasterContext, ingested: IngestedPackage) -> None:
    if not ingested.created:
        return
    async with ctx.sessionmaker() as session:
        if await repository.uploads_with_digest(session, ingested.digest):
            return
    ctx.store.delete(ingested.digest)


def find_package_folder(ctx: MasterContext, filename: str, ai_class: str, version: str) -> Path:
    for candidate in package_dir_candidates(ctx.settings.package_dir, filename, ai_class, version):
        if candidate.exists():
            return candidate
    raise Invalid(
        f"no package folder {filename!r} (nor {filename}-{ai_class}-{version}) "
        "in the master's package directory",
        field="filename",
    )
