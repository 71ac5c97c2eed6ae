"""Bearer-token authentication and who may call what.

The dependencies are ``async def`` so that FastAPI runs them on the event loop, not in a thread.

Principals:
- the operator (its token, checked by SHA-256: EDGE_OPERATOR_TOKEN_SHA256 or EDGE_OPERATOR_TOKEN;
  or an operator credential setup signed): every route;
- a service, each with its own credential signed by setup (shared.credentials; EDGE_SETUP_TOKEN,
  EDGE_MASTER_TOKEN, ..., EDGE_CONSOLE_TOKEN or EDGE_CREDENTIAL_FILE): reads, plus exactly the
  changes listed for it in ``SERVICE_GRANTS`` (its job, nothing else). A signed credential whose
  serial setup revoked (``KeyRing.revoked``) is refused. Every service verifies with setup's
  public keys only (shared.signing), so none but setup can mint one; HMAC credentials derived from
  EDGE_SERVICE_TOKEN only during the migration window (EDGE_LEGACY_CREDENTIALS_UNTIL);
- ``legacy``: the shared EDGE_SERVICE_TOKEN itself, accepted only while EDGE_ACCEPT_SERVICE_TOKEN
  is true (default in local mode), with the union of the services' grants and never an
  operator-only change (clusters, masters, edges, uploads, ...);
- an edge: a token issued by setup (shared.edge_tokens), not expired and not revoked; it posts its
  own records and reads only its own data (``EDGE_READS``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Tuple

from fastapi import Depends, Request
from starlette.requests import HTTPConnection
from typing_extensions import Annotated  # the edge agent imports this module on Python 3.8

from shared.credentials import decode_credential
from shared.edge_tokens import RevocationSet, decode_edge_token
from shared.errors import Forbidden, Unauthorized
from shared.settings import ServiceSettings
from shared.signing import KeyRing, UnknownKey

Grant = Tuple[str, str, str]  # (service answering, METHOD, route path template)

# What each service's credential may change on the others (reads are open to every service).
SERVICE_GRANTS: dict[str, frozenset[Grant]] = {
    "master": frozenset(
        {
            ("setup", "POST", "/ai-packages"),
            ("setup", "PATCH", "/ai-packages/{ai_id}"),
            ("setup", "DELETE", "/ai-packages/{ai_id}"),
            ("setup", "POST", "/deployments"),
            ("setup", "PATCH", "/deployments/{deployment_id}"),
            ("setup", "DELETE", "/deployments/{deployment_id}"),
            ("setup", "POST", "/deployments/observed"),
            ("setup", "POST", "/masters/register"),  # a master registers itself, heartbeats
            ("setup", "POST", "/masters/{master_id}/heartbeat"),
            ("master", "GET", "/artifacts/{digest}"),  # a site's master copies a package by digest
            ("setup", "POST", "/request_deploy_aiToDevice"),  # the field's routes, forwarded
            ("setup", "POST", "/request_undeploy_aiFromDevice"),
            ("setup", "POST", "/edges/{edge}/workload-token"),
            ("setup", "GET", "/edges/{edge}/camera"),
            ("setup", "GET", "/edges/token-revocations"),
            ("optimizer", "POST", "/events"),
        }
    ),
    "setup": frozenset(
        {
            ("master", "POST", "/reconcile"),
            ("master", "POST", "/ai-packages/{ai_id}/build"),
            ("master", "POST", "/ai-packages/{ai_id}/remove"),
            ("master", "GET", "/ai-packages/folders/{filename}"),
        }
    ),
    "optimizer": frozenset(
        {
            ("setup", "POST", "/deployments/bulk"),
            ("setup", "GET", "/edges/token-revocations"),
        }
    ),
    "analysis": frozenset(
        {
            ("vms", "POST", "/analysis/claim"),
            ("vms", "PUT", "/analysis/{request_id}/result"),
            ("setup", "GET", "/edges/token-revocations"),
        }
    ),
    "vms": frozenset(
        {
            ("setup", "GET", "/edges/node-ids"),
            ("setup", "GET", "/edges/token-revocations"),
            ("optimizer", "POST", "/events"),
        }
    ),
    # The console holds no operator credential: it exchanges the operator's secret, presented at
    # sign-in, for a short-lived one kept in the session, and revokes it at sign-out.
    "console": frozenset(
        {
            ("setup", "POST", "/operator/sessions"),
            ("setup", "DELETE", "/operator/sessions/{serial}"),
        }
    ),
}
# The shared token of old deployments: what the services did together, plus fetching artifacts
# (the agents' job before they had edge tokens). Never an operator-only change, nor the
# console's sessions.
SERVICE_GRANTS["legacy"] = frozenset().union(
    *(grants for name, grants in SERVICE_GRANTS.items() if name != "console")
) | {("master", "GET", "/artifacts/{digest}")}

# Service-only reads (node lists, revocations, artifacts, camera credentials): a grant is needed.
GRANTED_READS: frozenset[Grant] = frozenset(
    g for grants in SERVICE_GRANTS.values() for g in grants if g[1] == "GET"
)

# The read routes an edge token may call, by service; the path parameter named here (if any)
# must be the edge's own node id. Everything else answers 403 to an edge.
EDGE_READS: dict[tuple[str, str], str | None] = {
    ("optimizer", "/routing/{nid}"): "nid",
    ("vms", "/nodes/{nid}/series"): "nid",
    ("vms", "/analysis/{request_id}/image"): None,  # the handler checks the frame is the edge's own
    ("setup", "/conditions"): None,
    # The analysis gateway's handlers check the job or video is one the edge posted.
    ("analysis", "/jobs/{job_id}"): None,
    ("analysis", "/videos/{video_id}"): None,
    ("analysis", "/videos/{video_id}/events"): None,
    ("analysis", "/videos/{video_id}/annotated"): None,
}

# Routes an edge calls for itself whose handler checks the object is the edge's own (documented
# as "own"): a package archive only of an AI deployed on the edge (services.master.artifacts).
EDGE_OWN_CHECKED: frozenset[tuple[str, str]] = frozenset({("master", "/artifacts/{digest}")})
# Routes only an edge calls whose path names its own node (the handler refuses another's, 403):
# the path parameter that must be the token's node id.
EDGE_OWN_PATHS: dict[tuple[str, str], str] = {
    ("vms", "/live/{nid}/frame"): "nid",
}


@dataclass(frozen=True)
class Principal:
    kind: Literal["operator", "service", "edge", "anonymous"]
    nid: str | None = None  # set for edges
    name: str | None = None  # set for services: setup, master, optimizer, vms or legacy
    token_id: int | None = None  # edges: to check revocation on a cached principal
    expires_at: int | None = None
    serial: str | None = None  # signed service and operator credentials: revocable by serial

    def may(self, grant: Grant) -> bool:
        if self.kind == "operator":
            return True
        return self.kind == "service" and grant in SERVICE_GRANTS.get(self.name or "", frozenset())


ANONYMOUS = Principal("anonymous")


def bearer_token(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class UnknownSigningKey(Unauthorized):
    """A token signed with a key this service does not know (yet): it re-reads setup's keys."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"this token is signed with a key this service does not know ({kid})")
        self.kid = kid


def identify(
    settings: ServiceSettings,
    token: str | None,
    revocations: RevocationSet | None = None,
    keys: KeyRing | None = None,
) -> Principal:
    """Who presents ``token``: the operator (its token's SHA-256, or a credential setup signed),
    a service (a credential setup signed for it), an edge (an edge token setup signed, not
    revoked), or during the migration window a legacy HMAC credential."""
    if token is None:
        return ANONYMOUS
    operator = settings.operator_digest()
    if operator is not None and _same(hashlib.sha256(token.encode()).hexdigest(), operator):
        return Principal("operator")
    ring = keys if keys is not None else settings.key_ring()
    legacy_open = settings.legacy_open()
    try:
        signed = decode_credential(token, ring)
        if signed is not None:
            if ring.is_revoked(signed.serial):
                raise Unauthorized(f"this credential was revoked (serial {signed.serial})")
            return Principal(
                signed.kind, name=signed.name, expires_at=signed.expires_at, serial=signed.serial
            )
        legacy_secret = settings.edge_token_secret if legacy_open else None
        claims = decode_edge_token(
            token,
            ring,
            legacy_secret=legacy_secret.get_secret_value() if legacy_secret else None,
        )
    except UnknownKey as exc:
        raise UnknownSigningKey(exc.kid) from exc
    if claims is not None:
        if revocations is not None and not revocations.allows(claims):
            raise Unauthorized("this edge token was revoked: use the edge's current token")
        return Principal(
            "edge", nid=claims.nid, token_id=claims.token_id, expires_at=claims.expires_at
        )
    legacy = settings.service_token if settings.accepts_service_token else None
    if legacy is not None and _same(token, legacy.get_secret_value()):
        return Principal("service", name="legacy")
    if legacy_open:
        for name, credential in settings.service_credentials().items():
            if _same(token, credential):
                return Principal("service", name=name)
    raise Unauthorized("invalid bearer token")


def still_valid(
    principal: Principal,
    revocations: RevocationSet | None,
    now: float,
    keys: KeyRing | None = None,
) -> bool:
    """For a principal remembered by token (the VMS's fast path, an open stream): not expired,
    not revoked since (an edge token by its node's revocations, a signed credential by serial)."""
    if principal.expires_at is not None and principal.expires_at <= now:
        return False
    if principal.serial is not None:
        return keys is None or not keys.is_revoked(principal.serial)
    if principal.kind != "edge":
        return True
    assert principal.nid is not None and principal.token_id is not None
    return revocations is None or principal.token_id >= revocations.min_token_id.get(
        principal.nid, 0
    )


class PrincipalCache:
    """What a bearer token proved, remembered per service (``app.state.principals``) for every
    path that identifies callers: the framework's routes and the lean ASGI paths that skip it
    (the VMS's ingest, the master's desired sets). Edges send the same token every second, and an
    agent's desired set and its package are asked with one token: a token's signature is a pure
    function of the token and the key, so it is checked once. Bounded, cleared when full, and
    when the service's public keys change; expiry and revocation are checked again on every use
    (a dict lookup). A refused token is not remembered."""

    def __init__(self, size: int = 10_000) -> None:
        self._principals: dict[str, Principal] = {}
        self._size = size
        self._generation: int | None = None  # of the key ring the entries were proved with

    def identify(self, state: Any, headers: dict[bytes, bytes]) -> Principal:
        """The caller of a raw ASGI request (``headers`` as a dict of its raw pairs); raises
        Unauthorized for a bad, expired or revoked token (not remembered)."""
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return identify(state.settings, None)
        return self.remember(state, token)

    def remember(self, state: Any, token: str) -> Principal:
        """The principal ``token`` proves on the service whose ``app.state`` is ``state``."""
        revocations = getattr(state, "edge_revocations", None)
        ring = getattr(state, "key_ring", None)
        generation = ring.generation if ring is not None else None
        if generation != self._generation:
            self._principals.clear()
            self._generation = generation
        principal = self._principals.get(token)
        if principal is not None and not still_valid(principal, revocations, time.time(), ring):
            del self._principals[token]
            principal = None
        if principal is None:
            principal = identify(state.settings, token, revocations, ring)
            if len(self._principals) >= self._size:
                self._principals.clear()
            self._principals[token] = principal
        return principal


def revocations_of(connection: HTTPConnection) -> RevocationSet | None:
    return getattr(connection.app.state, "edge_revocations", None)


def keys_of(connection: HTTPConnection) -> KeyRing | None:
    return getattr(connection.app.state, "key_ring", None)


def identify_connection(connection: HTTPConnection) -> Principal:
    """The caller of a request or a WebSocket handshake (bearer token), revocations applied;
    through the service's ``PrincipalCache`` where it has one (``app.state.principals``)."""
    state = connection.app.state
    token = bearer_token(connection)
    cache: PrincipalCache | None = getattr(state, "principals", None)
    if cache is not None and token is not None:
        return cache.remember(state, token)
    return identify(state.settings, token, revocations_of(connection), keys_of(connection))


async def identify_async(connection: HTTPConnection) -> Principal:
    """``identify_connection``, re-reading setup's public keys once when the token names a key
    this service does not know yet (a rotation)."""
    try:
        return identify_connection(connection)
    except UnknownSigningKey as exc:
        ring = keys_of(connection)
        if ring is None or not await ring.refresh(unknown=exc.kid):
            raise
        return identify_connection(connection)


def principal_alive(
    connection: HTTPConnection, principal: Principal
) -> Callable[[], Awaitable[bool]]:
    """For a stream opened by ``principal``: whether its credential still holds (not expired nor
    revoked since: an edge token, a signed service or operator credential by its serial)."""

    async def alive() -> bool:
        return still_valid(principal, revocations_of(connection), time.time(), keys_of(connection))

    return alive


def _grant(request: Request) -> Grant:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return (request.app.state.settings.service_name, request.method, path)


async def current_principal(request: Request) -> Principal:
    return await identify_async(request)


async def require_staff(request: Request) -> Principal:
    """A change: the operator, or a service this change is its job (SERVICE_GRANTS)."""
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        raise Unauthorized()
    if principal.kind == "edge":
        raise Forbidden("this route needs the operator's or a service's token")
    if not principal.may(_grant(request)):
        raise Forbidden(f"the {principal.name} service's credential may not call this route")
    return principal


async def require_service(request: Request) -> Principal:
    """Service-only routes: only the services this route serves (SERVICE_GRANTS)."""
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        raise Unauthorized()
    if principal.kind != "service" or not principal.may(_grant(request)):
        raise Forbidden("this route is for the platform's services only (the one it serves)")
    return principal


async def require_reader(request: Request) -> Principal:
    """Reads: the operator and the services; an edge only its own data (EDGE_READS); without a
    token only where EDGE_OPEN_READS says so."""
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        if not request.app.state.settings.open_reads:
            raise Unauthorized()
        return principal
    if principal.kind == "edge":
        service, _, path = _grant(request)
        if (service, path) not in EDGE_READS:
            raise Forbidden("an edge token reads only its own data")
        own = EDGE_READS[(service, path)]
        if own is not None and request.path_params.get(own) != principal.nid:
            raise Forbidden(
                f"an edge token reads only its own data: {own} must be {principal.nid!r}", field=own
            )
    return principal


async def require_edge_or_service(request: Request) -> Principal:
    """Routes an edge calls for itself (renew its token, fetch an artifact), or a service's."""
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        raise Unauthorized()
    if principal.kind == "edge":
        return principal
    if principal.kind != "service" or not principal.may(_grant(request)):
        raise Forbidden("this route is for edges and the service it serves")
    return principal


async def require_edge(request: Request) -> Principal:
    """Routes only an edge calls, for itself (renew its token)."""
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        raise Unauthorized()
    if principal.kind != "edge":
        raise Forbidden("only an edge's own token may call this route")
    return principal


async def require_authenticated(request: Request) -> Principal:
    """Any valid token (the handler checks an edge's own objects): 401 without one, before the
    route's parameters are looked at."""
    principal = await current_principal(request)
    if principal.kind == "anonymous":
        raise Unauthorized()
    return principal


OperatorAuth = Annotated[Principal, Depends(require_staff)]
AuthenticatedAuth = Annotated[Principal, Depends(require_authenticated)]
ServiceAuth = Annotated[Principal, Depends(require_service)]
ReaderAuth = Annotated[Principal, Depends(require_reader)]
EdgeOrServiceAuth = Annotated[Principal, Depends(require_edge_or_service)]
EdgeAuth = Annotated[Principal, Depends(require_edge)]
AnyPrincipal = Annotated[Principal, Depends(current_principal)]


# --- the rule of every route, in its OpenAPI operation (x-auth) -----------------------------
_RULES = {
    require_staff: "change",
    require_service: "service",
    require_reader: "read",
    require_edge_or_service: "edge-or-service",
    require_edge: "edge",
    current_principal: "authenticated",
    require_authenticated: "authenticated",
}
# Routes that identify the caller inline (the VMS's ingest hot path), by service and path.
INLINE_RULES: dict[tuple[str, str], str] = {
    ("vms", "/usage"): "ingest",
    ("vms", "/save_edgeData"): "ingest",
    ("vms", "/detections"): "ingest",
    ("vms", "/batch"): "ingest",
    ("analysis", "/ws/frames"): "authenticated",  # the WebSocket handshake (bearer token)
}
_WHO = {
    "open": "anyone, no token",
    "change": "the operator; a service only where listed",
    "service": "only the services listed",
    "read": "the operator and every service; an edge only where its own data (edge)",
    "edge-or-service": "an edge's own token; the services listed",
    "edge": "only an edge's own token",
    "authenticated": "any valid token (the handler checks an edge's node)",
    "ingest": "any valid token; an edge's records are its own node's",
}


def _rule_of(dependant: Any) -> str | None:
    for dep in dependant.dependencies:
        if dep.call in _RULES:
            return _RULES[dep.call]
        found = _rule_of(dep)
        if found is not None:
            return found
    return None


def route_rule(service: str, method: str, path: str, dependant: Any) -> dict[str, Any]:
    """Who may call one route: the documented rule (what the auth matrix test checks)."""
    rule = _rule_of(dependant) or INLINE_RULES.get((service, path), "open")
    grant = (service, method, path)
    services = sorted(
        name
        for name, grants in SERVICE_GRANTS.items()
        if rule in ("read", "authenticated", "ingest") or grant in grants
    )
    edge: str | bool = rule in ("edge-or-service", "edge", "authenticated", "ingest")
    if rule == "read" and (service, path) in EDGE_READS:
        own = EDGE_READS[(service, path)]
        edge = f"own:{own}" if own else "own"
    if edge is True and (service, path) in EDGE_OWN_CHECKED:
        edge = "own"
    if edge is True and (service, path) in EDGE_OWN_PATHS:
        edge = f"own:{EDGE_OWN_PATHS[(service, path)]}"
    return {
        "rule": rule,
        "operator": rule not in ("service", "edge-or-service", "edge"),
        "services": services,
        "edge": edge,
        "who": _WHO[rule],
    }


def _api_routes(routes: list[Any]) -> list[Any]:
    """Every API route with its full path and dependencies (routers included, at any depth)."""
    from fastapi import routing

    iterate = getattr(routing, "iter_route_contexts", None)
    contexts = list(iterate(routes)) if iterate is not None else routes
    out = []
    for ctx in contexts:
        original = getattr(ctx, "original_route", ctx)
        if isinstance(original, routing.APIRoute) and getattr(ctx, "dependant", None) is not None:
            out.append(ctx)
    return out


def websocket_routes(routes: list[Any]) -> list[Any]:
    """Every WebSocket route with its full path and dependencies (routers included)."""
    from fastapi import routing

    iterate = getattr(routing, "iter_route_contexts", None)
    contexts = list(iterate(routes)) if iterate is not None else routes
    return [
        ctx
        for ctx in contexts
        if isinstance(getattr(ctx, "original_route", ctx), routing.APIWebSocketRoute)
    ]


def _websocket_document(service: str, route: Any) -> dict[str, Any]:
    rule = route_rule(service, "GET", route.path, route.dependant)
    services = ", ".join(rule["services"]) or "none"
    endpoint = getattr(getattr(route, "original_route", route), "endpoint", None)
    doc = " ".join((getattr(endpoint, "__doc__", None) or "").split())
    return {
        "x-auth": rule,
        "description": f"{doc}\n\nWho may call: {rule['who']} (services: {services}).".strip(),
    }


def field_route_paths(routes: list[Any]) -> set[str]:
    """The paths of the field's routes (they answer errors in the field's envelope)."""
    return {
        route.path
        for route in _api_routes(routes)
        if getattr(getattr(route, "original_route", route), "field_envelope", False)
    }


def annotate_openapi(schema: dict[str, Any], routes: list[Any], service: str) -> None:
    """Adds ``x-auth`` (and a "Who may call" line) to every operation of the schema, and lists
    the WebSocket routes (which OpenAPI cannot describe) under ``x-websockets`` the same way."""
    sockets = {
        route.path: _websocket_document(service, route) for route in websocket_routes(routes)
    }
    if sockets:
        schema["x-websockets"] = sockets
    for route in _api_routes(routes):
        operations = schema.get("paths", {}).get(route.path, {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None or "x-auth" in operation:
                continue
            rule = route_rule(service, method, route.path, route.dependant)
            operation["x-auth"] = rule
            services = ", ".join(rule["services"]) or "none"
            line = f"Who may call: {rule['who']} (services: {services})."
            operation["description"] = (operation.get("description", "") + "\n\n" + line).strip()
