"""Removing an AI: its image manifest from the registry (where the registry allows deletes) and its
package from the artifact store once no other AI row references the digest.

An AI is removed in setup (the owner of the row), and setup then asks the master to clean up
(POST /ai-packages/{id}/remove). When the removal comes through the master (DELETE
/ai-packages/{id}, the field's /remove_edgeAI), the master cleans up at once and answers what it
deleted; setup's call then joins the clean-up under way, or is answered what it did: the clean-up
runs once. A removed AI stays removed, so a clean-up that left nothing to retry is never run
again (one whose image delete failed is).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends

from services.master.builds import repository
from services.master.context import MasterContext
from services.master.registry import RegistryClient, delete_image, image_name
from shared.contracts.fleet import PackageStatus
from shared.contracts.master import AiPackageRecord, AiRemoval
from shared.deps import from_app_state
from shared.errors import Conflict, DomainError, NotFound

log = logging.getLogger("edge.master.removal")

RemovalResult = AiRemoval


# Clean-ups remembered (the latest ones): enough for setup's call to find the master's own.
REMEMBERED = 1000


class Removals:
    """One clean-up per AI: a request while one runs joins it; setup's call after one that left
    nothing to retry is answered its result. Tasks are tracked, and cancelled and awaited on
    shutdown."""

    def __init__(self, ctx: MasterContext):
        self.ctx = ctx
        self._tasks: dict[int, asyncio.Task[RemovalResult]] = {}
        self._done: OrderedDict[int, RemovalResult] = OrderedDict()

    async def remove(
        self, ai_id: int, *, first: Callable[[], Awaitable[object]] | None = None
    ) -> RemovalResult:
        """Clean up after AI ``ai_id``; ``first``: the removal in setup, run before it (the
        master's own routes: they always run)."""
        task = self._tasks.get(ai_id)
        if task is None:
            done = self._done.get(ai_id)
            if done is not None and first is None:
                return done
            task = asyncio.create_task(self._run(ai_id, first), name=f"remove-{ai_id}")
            self._tasks[ai_id] = task
            task.add_done_callback(lambda _task: self._tasks.pop(ai_id, None))
        return await asyncio.shield(task)

    async def _run(
        self, ai_id: int, first: Callable[[], Awaitable[object]] | None
    ) -> RemovalResult:
        if first is not None:
            await first()
        result = await remove_ai(self.ctx, ai_id)
        if _final(result):
            self._done[ai_id] = result
            self._done.move_to_end(ai_id)
            while len(self._done) > REMEMBERED:
                self._done.popitem(last=False)
        return result

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _final(result: RemovalResult) -> bool:
    """Nothing left that another clean-up could do (the AI was found, its image not kept)."""
    return result["image"] != "unknown" and not str(result["image"]).startswith("kept")


async def remove_ai(ctx: MasterContext, ai_id: int) -> RemovalResult:
    """Idempotent: a second call finds the image and artifact gone and says so."""
    try:
        ai = await ctx.setup.get_ai(ai_id)
    except NotFound:
        return {"id": ai_id, "image": "unknown", "artifact": "unknown"}
    if ai.status != PackageStatus.REMOVED:
        raise Conflict(
            f"AI {ai_id} is {ai.status} in setup; remove it there first "
            f"(DELETE /ai-packages/{ai_id})",
            field="id",
        )
    result: RemovalResult = {
        "id": ai_id,
        "image": await _delete_image(ctx, ai),
        "artifact": await _delete_artifact(ctx, ai),
    }
    log.info("AI %s removed: image %s, artifact %s", ai_id, result["image"], result["artifact"])
    return result


async def _delete_image(ctx: MasterContext, ai: AiPackageRecord) -> str:
    """The AI's image in this master's registry (the site's): the build master's own push is
    setup's image_ref; another site's copy has the same name under its registry's host."""
    if not ai.image_ref or ctx.registry is None:
        return "none"
    site_ref = str(image_name(ctx.registry.host, ai.filename, ai.ai_class, ai.version))
    # setup's digest is the build master's; another site's registry is asked by tag.
    digest = ai.image_digest if site_ref == ai.image_ref else None
    try:
        async with RegistryClient(ctx.registry) as registry:
            return await delete_image(registry, site_ref, digest)
    except NotFound:
        return "not_found"
    except DomainError as exc:
        # The AI is removed either way; the image stays for an operator to clean up.
        log.warning("image of AI %s not deleted: %s", ai.id, exc.message)
        return f"kept: {exc.message}"


async def _delete_artifact(ctx: MasterContext, ai: AiPackageRecord) -> str:
    """The upload record goes; the package too, unless another AI or upload still uses it."""
    digest = ai.package_digest
    async with ctx.sessionmaker.begin() as session:
        await repository.forget_upload(session, ai.filename, ai.ai_class, ai.version)
        staged = await repository.uploads_with_digest(session, digest) if digest else []
    if not digest:
        return "none"
    users = [
        a.id
        for a in await ctx.setup.list_ais()
        if a.id != ai.id and a.status != PackageStatus.REMOVED and a.package_digest == digest
    ]
    if users or staged:
        why = f"AI {', '.join(map(str, users))}" if users else "an upload not yet recorded in setup"
        return f"kept (still used by {why})"
    return "deleted" if ctx.store.delete(digest) else "not_found"


RemovalsDep = Annotated[Removals, Depends(from_app_state("removals", Removals))]
