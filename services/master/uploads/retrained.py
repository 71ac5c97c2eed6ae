"""A new version of an existing AI package from a training pipeline: just the changed weights file
and the manifest fields (title, description, version), over REST.

The new package is the base version's stored artifact with that one file replaced and the
manifest's version (and description) changed, stored and recorded like any upload; the
optimizer's version policy then rolls it out to the edges, which fetch it as a small binary
patch from the version they run (services.master.artifacts.deltas).
"""

from __future__ import annotations

import asyncio
import posixpath
import shutil
import tempfile
from pathlib import Path

import yaml
from fastapi import UploadFile

from services.master.builds.service import BuildRunner
from services.master.context import MasterContext
from services.master.packages import MANIFEST_NAMES, extract_artifact
from services.master.uploads import service
from services.master.uploads.schemas import UploadFields
from shared.contracts.fleet import PackageStatus
from shared.contracts.master import UploadAccepted
from shared.errors import Invalid, PayloadTooLarge
from shared.versions import validate_version

CHUNK = 1 << 20


def clean_member_path(path: str) -> str:
    """A relative path inside the package; Invalid (field ``path``) for anything else."""
    norm = posixpath.normpath(path.replace("\\", "/"))
    if not path or norm.startswith(("/", "../")) or norm in (".", "..") or ":" in norm[:2]:
        raise Invalid(f"{path!r} is not a relative path inside the package", field="path")
    return norm


def _rewrite_manifest(root: Path, version: str, description: str | None) -> None:
    for name in MANIFEST_NAMES:
        manifest = root / name
        if not manifest.is_file():
            continue
        if name.endswith(".toml"):
            raise Invalid(
                "the base package's manifest is TOML: upload the new version whole",
                field="ai_id",
            )
        data = yaml.safe_load(manifest.read_text()) or {}
        data["version"] = version
        if description is not None:
            data["description"] = description
        manifest.write_text(yaml.safe_dump(data, sort_keys=False))
        return
    raise Invalid("the base package has no manifest", field="ai_id")


def _copy_upload(upload: UploadFile, target: Path, max_bytes: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    upload.file.seek(0)
    size = 0
    with open(target, "wb") as out:
        while block := upload.file.read(CHUNK):
            size += len(block)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"the file is over the limit of {max_bytes} bytes", field="file"
                )
            out.write(block)
    if size == 0:
        raise Invalid("the file is empty", field="file")


async def new_version(
    ctx: MasterContext,
    builds: BuildRunner,
    ai_id: int,
    *,
    upload: UploadFile,
    version: str,
    title: str | None,
    description: str | None,
    path: str | None,
) -> UploadAccepted:
    base = await ctx.setup.get_ai(ai_id)
    if base.status != PackageStatus.READY or not base.package_digest:
        raise Invalid(
            f"AI {ai_id} is {base.status}: only a ready package gets new versions", field="ai_id"
        )
    version = validate_version(version)
    if version == base.version:
        raise Invalid(f"version {version} is the base's own: give the new one", field="version")
    models = list((base.manifest or {}).get("models") or [])
    member = clean_member_path(path or (models[0] if models else upload.filename or ""))
    if title is not None or description is not None:
        parts = [p for p in (title, description) if p]
        text = "\n\n".join(parts)[:2000]
    else:
        text = None
    staging = Path(tempfile.mkdtemp(dir=ctx.store.tmp_dir, prefix="retrained-"))
    try:
        await extract_artifact(ctx.store, base.package_digest, staging)
        target = staging / member
        if target.is_symlink() or target.is_dir():
            raise Invalid(f"{member!r} is not a file in the package", field="path")
        await asyncio.to_thread(_copy_upload, upload, target, ctx.settings.max_upload_bytes)
        await asyncio.to_thread(_rewrite_manifest, staging, version, text)
        fields = UploadFields(
            filename=base.filename,
            version=version,
            ai_class=base.ai_class,
            condition=base.condition,
            description=text if text is not None else base.description,
        )
        return await service.accept(ctx, builds, staging, fields, kind="retrained")
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
