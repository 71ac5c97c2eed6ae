"""The master's calls to setup (the owner of AI rows and desired state) and the optimizer."""
from __future__ import annotations

import logging
from typing import Any

import httpx

from services.master.settings import MasterSettings
from shared.clients import raise_for_upstream, service_client
from shared.errors import Conflict, Invalid, Unavailable

log = logging.getLogger("edge.master.setup")


class SetupClient:
    """Every call carries the service token; errors come back as domain errors (404, 409, 422 kept)."""

    def __init__(self, settings: MasterSettings):
        self.settings = settings
        self._http = service_client(settings, settings.setup_url, timeout=settings.setup_timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, what: str, **kw) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise Unavailable(f"setup unreachable ({what}): {type(exc).__name__}", headers={"Retry-After": "2"}) from exc
        if response.status_code in (409, 422):
            # Keep the field setup named, so the caller's 4xx names it too.
            try:
                err = response.json().get("error", {})
            except ValueError:
                err = {}
            cls = Conflict if response.status_code == 409 else Invalid
            raise cls(err.get("message") or response.text, field=err.get("field"))
        raise_for_upstream(response, what)
        return response

    # --- edge tokens for workloads (kubernetes and docker runtimes) ----------------------
    async def workload_token(self, edge_id: int) -> dict[str, Any]:
        path = f"/edges/{edge_id}/workload-token"
        return (await self._call("POST", path, f"edge {edge_id} token")).json()

    # --- AI packages --------------------------------------------------------------------
    async def get_ai(self, ai_id: int) -> dict[str, Any]:
        return (await self._call("GET", f"/ai-packages/{ai_id}", f"AI {ai_id}")).json()

    async def list_ais(self, params: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("GET", "/ai-packages", "AI list", params=params)).json()

    async def find_ai(self, filename: str, ai_class: str, version: str) -> dict[str, Any] | None:
        from shared.versions import version_key

        page = await self.list_ais({"filename": filename, "ai_class": ai_class, "limit": 10_000})
        key = version_key(version)
        return next((a for a in page["items"] if version_key(a["version"]) == key), None)

    async def create_ai(self, body: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("POST", "/ai-packages", "AI create", json=body)).json()

    async def patch_ai(self, ai_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("PATCH", f"/ai-packages/{ai_id}", f"AI {ai_id} update", json=body)).json()

    async def delete_ai(self, ai_id: int) -> dict[str, Any]:
        return (await self._call("DELETE", f"/ai-packages/{ai_id}", f"AI {ai_id} removal")).json()

    # --- desired state ------------------------------------------------------------------
    async def snapshot(self) -> dict[str, Any]:
        return (await self._call("GET", "/fleet/snapshot", "fleet snapshot")).json()

    async def camera_url(self, edge_id: int) -> str | None:
        """The edge's camera URL with its credentials (a secret: never logged, never in params)."""
        answer = await self._call("GET", f"/edges/{edge_id}/camera", f"edge {edge_id} camera")
        return answer.json()["url"]

    async def clusters(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/clusters", "clusters", params={"limit": 10_000})).json()["items"]

    async def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("POST", "/deployments", "deployment create", json=body)).json()

    async def update_deployment(self, dep_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("PATCH", f"/deployments/{dep_id}", f"deployment {dep_id} update", json=body)).json()

    async def remove_deployment(self, dep_id: int) -> dict[str, Any]:
        return (await self._call("DELETE", f"/deployments/{dep_id}", f"deployment {dep_id} removal")).json()

    async def report_observed(self, reports: list[dict[str, Any]]) -> None:
        if reports:
            await self._call("POST", "/deployments/observed", "observed report", json={"reports": reports})

    async def legacy(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One of setup's field routes (/request_*), answered in the field's envelope."""
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise Unavailable(f"setup unreachable ({path}): {type(exc).__name__}", headers={"Retry-After": "2"}) from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.is_success:
            return data
        message = data.get("message") or response.text
        if response.status_code == 404:
            from shared.errors import NotFound

            raise NotFound(message)
        if response.status_code == 409:
            raise Conflict(message)
        if response.status_code in (400, 422):
            raise Invalid(message)
        raise_for_upstream(response, path)
        return data


class OptimizerNotifier:
    """Fire-and-forget events for the optimizer: a down optimizer never stops the master."""

    def __init__(self, settings: MasterSettings):
        self.enabled = settings.notify_optimizer
        self._http = service_client(settings, settings.optimizer_url, timeout=2.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            response = await self._http.post("/events", json=event)
            if response.status_code >= 400:
                log.info("optimizer answered %s to %s", response.status_code, event.get("type"))
        except httpx.HTTPError as exc:
            log.info("optimizer unreachable for %s (%s)", event.get("type"), type(exc).__name__)
