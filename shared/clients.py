"""Compatibility for callers not yet on shared.service_client (the optimizer's sources/clients.py).

New code uses :class:`shared.service_client.ServiceClient`, which maps transport failures and
error answers to domain errors in one place. Delete this module once nothing imports it.
"""

from __future__ import annotations

import httpx

from shared.errors import NotFound, Unavailable, UpstreamError
from shared.service_client import error_of
from shared.settings import ServiceSettings


def service_client(
    settings: ServiceSettings, base_url: str, *, timeout: float = 10.0
) -> httpx.AsyncClient:
    """A bare httpx client carrying this service's own credential."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {settings.own_credential()}"},
        timeout=timeout,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )


def raise_for_upstream(response: httpx.Response, what: str) -> None:
    """Translate another service's error answer into a domain error (404, 5xx, anything else)."""
    if response.is_success:
        return
    message, _field = error_of(response)
    if response.status_code == 404:
        raise NotFound(f"{what}: {message}")
    if response.status_code in (502, 503, 504):
        raise Unavailable(f"{what} unavailable: {message}", headers={"Retry-After": "2"})
    raise UpstreamError(f"{what} answered {response.status_code}: {message}")
