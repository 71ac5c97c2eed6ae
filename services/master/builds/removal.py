"""Removing an AI: its image manifest from the registry (where the registry allows deletes) and its
package from the artifact store once no other AI row references the digest."""
from __future__ import annotations

import logging
from typing import Any

from services.master.builds import repository
from services.master.context import MasterContext
from services.master.registry import RegistryClient, delete_image
from shared.errors import Conflict, DomainError, NotFound

log = logging.getLogger("edge.master.removal")


async def remove_ai(ctx: MasterContext, ai_id: int) -> dict[str, Any]:
    """Idempotent: a second call finds the image and artifact gone and says so."""
    try:
        ai = await ctx.setup.get_ai(ai_id)
    except NotFound:
        return {"id": ai_id, "image": "unknown", "artifact": "unknown"}
    if ai["status"] != "removed":
        raise Conflict(f"AI {ai_id} is {ai['status']} in setup; remove it there first (DELETE /ai-packages/{ai_id})", field="id")
    result: dict[str, Any] = {"id": ai_id, "image": "none", "artifact": "none"}

    if ai.get("image_ref") and ctx.registry is not None:
        try:
            async with RegistryClient(ctx.registry) as registry:
                result["image"] = await delete_image(registry, ai["image_ref"], ai.get("image_digest"))
        except NotFound:
            result["image"] = "not_found"
        except DomainError as exc:
            # The AI is removed either way; the image stays for an operator to clean up.
            result["image"] = f"kept: {exc.message}"
            log.warning("image of AI %s not deleted: %s", ai_id, exc.message)

    digest = ai.get("package_digest")
    async with ctx.sessionmaker.begin() as session:
        await repository.forget_upload(session, ai["filename"], ai["ai_class"], ai["version"])
    if digest:
        page = await ctx.setup.list_ais({"limit": 10_000})
        users = [a["id"] for a in page["items"] if a["id"] != ai_id and a["status"] != "removed" and a.get("package_digest") == digest]
        async with ctx.sessionmaker() as session:
            staged = await repository.uploads_with_digest(session, digest)
        if users or staged:
            why = f"AI {', '.join(map(str, users))}" if users else "an upload not yet recorded in setup"
            result["artifact"] = f"kept (still used by {why})"
        else:
            result["artifact"] = "deleted" if ctx.store.delete(digest) else "not_found"
    log.info("AI %s removed: image %s, artifact %s", ai_id, result["image"], result["artifact"])
    return result
