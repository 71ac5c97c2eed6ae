"""HTTP clients for service-to-service calls, carrying the calling service's own credential."""
from __future__ import annotations

import httpx

from shared.errors import NotFound, Unavailable, UpstreamError
from shared.settings import ServiceSettings


def service_client(settings: ServiceSettings, base_url: str, *, timeout: float = 10.0) -> httpx.AsyncClient:
    token = settings.own_credential()  # this service's own, scoped credential (shared.auth)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )


def raise_for_upstream(response: httpx.Response, what: str) -> None:
    """Translate another service's error answer into a domain error."""
    if response.is_success:
        return
    try:
        detail = response.json()
        message = detail.get("error", {}).get("message") or detail.get("message") or response.text
    except ValueError:
        message = response.text
    if response.status_code == 404:
        raise NotFound(f"{what}: {message}")
    if response.status_code in (502, 503, 504):
        raise Unavailable(f"{what} unavailable: {message}", headers={"Retry-After": "2"})
    raise UpstreamError(f"{what} answered {response.status_code}: {message}")
