"""Bearer-token authentication.

The dependencies are ``async def`` so that FastAPI runs them on the event loop, not in a thread.

Principals: the operator (EDGE_OPERATOR_TOKEN), another service (EDGE_SERVICE_TOKEN),
and an edge (a token issued by setup, verified offline, see shared.edge_tokens).
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request

from shared.edge_tokens import verify_edge_token
from shared.errors import Forbidden, Unauthorized
from shared.settings import ServiceSettings


@dataclass(frozen=True)
class Principal:
    kind: Literal["operator", "service", "edge", "anonymous"]
    nid: str | None = None  # set for edges

    @property
    def is_staff(self) -> bool:
        return self.kind in ("operator", "service")


ANONYMOUS = Principal("anonymous")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def identify(settings: ServiceSettings, token: str | None) -> Principal:
    if token is None:
        return ANONYMOUS
    for kind, secret in (("operator", settings.operator_token), ("service", settings.service_token)):
        if secret is not None and hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
            return Principal(kind)  # type: ignore[arg-type]
    if settings.edge_token_secret is not None:
        nid = verify_edge_token(token, settings.edge_token_secret.get_secret_value())
        if nid is not None:
            return Principal("edge", nid=nid)
    raise Unauthorized("invalid bearer token")


async def current_principal(request: Request) -> Principal:
    return identify(request.app.state.settings, bearer_token(request))


async def require_staff(request: Request) -> Principal:
    """Operator or another service: needed for every change outside ingest."""
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        raise Unauthorized()
    if not principal.is_staff:
        raise Forbidden("this route needs the operator's or a service's token")
    return principal


async def require_service(request: Request) -> Principal:
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        raise Unauthorized()
    if principal.kind != "service":
        raise Forbidden("this route is for the platform's services only")
    return principal


async def require_reader(request: Request) -> Principal:
    """Reads are open only where EDGE_OPEN_READS says so."""
    principal = await current_principal(request)
    if principal.kind == "anonymous" and not request.app.state.settings.open_reads:
        raise Unauthorized()
    return principal


OperatorAuth = Annotated[Principal, Depends(require_staff)]
ServiceAuth = Annotated[Principal, Depends(require_service)]
ReaderAuth = Annotated[Principal, Depends(require_reader)]
AnyPrincipal = Annotated[Principal, Depends(current_principal)]
