"""The one client layer for service-to-service calls.

Every call from one service to another goes through a :class:`ServiceClient`: it carries the
caller's own credential, and it turns transport failures and error answers into the project's
domain errors here, once, so no caller writes ``except httpx.HTTPError`` again. Calls nobody
waits for (notifications) go through an :class:`Outbox`: a bounded queue drained by one tracked
task, counted in metrics and drained on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, Protocol, TypeVar

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ValidationError

from shared.errors import (
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UpstreamError,
)

log = logging.getLogger("edge.clients")

ModelT = TypeVar("ModelT", bound=BaseModel)
T_co = TypeVar("T_co", covariant=True)


class Adapter(Protocol[T_co]):
    """What reads an answer that is not one model (a list of models, a TypedDict): a pydantic
    ``TypeAdapter``."""

    def validate_json(self, data: str | bytes | bytearray, /) -> T_co: ...


# Answers that mean "the other side is busy or down": retry later.
_RETRY_LATER = frozenset({408, 429, 502, 503, 504})


def error_of(response: httpx.Response) -> tuple[str, str | None]:
    """The message and field of an error answer, in the project's model or the field's envelope."""
    try:
        body = response.json()
    except ValueError:
        return (response.text[:300] or response.reason_phrase), None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or response.reason_phrase), error.get("field")
        if "message" in body:
            return str(body["message"]), None
        if "detail" in body:
            return str(body["detail"]), None
    return response.text[:300], None


def domain_error_for(response: httpx.Response, what: str) -> DomainError:
    """The domain error that another service's error answer stands for."""
    message, field = error_of(response)
    status = response.status_code
    if status == 404:
        return NotFound(f"{what}: {message}", field=field)
    if status == 409:
        return Conflict(f"{what}: {message}", field=field)
    if status in (400, 422):
        return Invalid(f"{what}: {message}", field=field)
    if status == 413:
        return PayloadTooLarge(f"{what}: {message}", field=field)
    if status in _RETRY_LATER:
        retry_after = response.headers.get("Retry-After", "2")
        return Unavailable(f"{what} unavailable: {message}", headers={"Retry-After": retry_after})
    # 401/403 mean our own credential was refused: a configuration error on this side, shown
    # to our caller as a bad upstream answer rather than as their own auth failure.
    return UpstreamError(f"{what} answered {status}: {message}")


class ServiceClient:
    """Another service, reached with this caller's credential."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        token: str | None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        self.name = name
        self.acting: dict[str, str] = {}  # another credential's header (acting_as)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=verify,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def acting_as(self, token: str) -> ServiceClient:
        """This service reached with another credential over the same connections (the
        console's calls on a session's behalf). Only the original is closed."""
        view = copy.copy(self)
        view.acting = {"Authorization": f"Bearer {token}"}
        return view

    def _headers(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        if not self.acting:
            return headers
        return {**self.acting, **(headers or {})}

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: tuple[int, ...] = (),
        request_timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send one request; a success (or a status in ``allow``) is returned, anything else raised
        as the matching domain error. ``request_timeout``: this request's own, instead of the
        client's."""
        label = what or f"{self.name} {method} {path}"
        try:
            response = await self.http.request(
                method,
                path,
                json=json,
                params=params,
                content=content,
                headers=self._headers(headers),
                timeout=httpx.USE_CLIENT_DEFAULT if request_timeout is None else request_timeout,
            )
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"{label}: {self.name} unreachable ({type(exc).__name__})",
                headers={"Retry-After": "2"},
            ) from exc
        if response.is_success or response.status_code in allow:
            return response
        raise domain_error_for(response, label)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        request_timeout: float | httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed answer (Server-Sent Events, a file), open while the block runs; an error
        answer or a transport failure is raised as ``request`` raises it."""
        label = what or f"{self.name} {method} {path}"
        try:
            async with self.http.stream(
                method,
                path,
                params=params,
                headers=self._headers(headers),
                timeout=httpx.USE_CLIENT_DEFAULT if request_timeout is None else request_timeout,
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise domain_error_for(response, label)
                yield response
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"{label}: {self.name} unreachable ({type(exc).__name__})",
                headers={"Retry-After": "2"},
            ) from exc

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON of a successful answer (None for an empty body)."""
        response = await self.request(method, path, **kw)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(f"{self.name} {path}: answer is not JSON") from exc

    async def model(self, method: str, path: str, model: type[ModelT], **kw: Any) -> ModelT:
        """A successful answer parsed as the contract ``model``; drift is an upstream error."""
        response = await self.request(method, path, **kw)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._drift(path, model.__name__, exc) from exc

    async def adapted(self, method: str, path: str, adapter: Adapter[T_co], **kw: Any) -> T_co:
        """A successful answer parsed as the contract ``adapter`` validates (a list of models, a
        TypedDict); drift is an upstream error."""
        response = await self.request(method, path, **kw)
        try:
            return adapter.validate_json(response.content)
        except ValidationError as exc:
            raise self._drift(path, "its contract", exc) from exc

    def _drift(self, path: str, what: str, exc: ValidationError) -> UpstreamError:
        first = exc.errors()[0]
        return UpstreamError(
            f"{self.name} {path}: answer does not match {what}: "
            f"{first.get('loc')} {first.get('msg')}"
        )


class OutboxMetrics:
    """Counters of an outbox, on the app's registry (served at /metrics)."""

    def __init__(self, registry: CollectorRegistry | None, prefix: str) -> None:
        self.deliveries = Counter(
            f"{prefix}_outbox_deliveries_total",
            "Background notifications to other services, by target, kind and outcome",
            ["target", "kind", "outcome"],
            registry=registry,
        )
        self.depth = Gauge(
            f"{prefix}_outbox_queued",
            "Background notifications waiting to be sent",
            ["target"],
            registry=registry,
        )


class Outbox:
    """Notifications nobody waits for, delivered by one tracked task.

    ``send`` never blocks: a full queue drops the message (counted), because every receiver
    also resynchronises on its own schedule. ``stop`` gives queued messages a short deadline
    to go out, then cancels.
    """

    def __init__(
        self,
        client: ServiceClient,
        *,
        metrics: OutboxMetrics,
        enabled: bool = True,
        maxsize: int = 1000,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.enabled = enabled
        self.queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue(maxsize=maxsize)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.client.name}")

    async def stop(self, drain_timeout: float = 2.0) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), timeout=drain_timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.aclose()

    def send(self, path: str, payload: Any, *, kind: str) -> bool:
        """Queue one POST; False when it was dropped (disabled or the queue is full)."""
        target = self.client.name
        if not self.enabled:
            return False
        try:
            self.queue.put_nowait((path, kind, payload))
        except asyncio.QueueFull:
            self.metrics.deliveries.labels(target, kind, "dropped").inc()
            return False
        self.metrics.depth.labels(target).set(self.queue.qsize())
        return True

    async def _run(self) -> None:
        target = self.client.name
        while True:
            path, kind, payload = await self.queue.get()
            try:
                await self.client.request("POST", path, json=payload)
                outcome = "sent"
            except DomainError as exc:
                outcome = "failed"
                log.info("%s notification %s not delivered: %s", target, kind, exc.message)
            except Exception:  # a bug in one message must not stop the ones behind it
                outcome = "error"
                log.exception("%s notification %s could not be sent", target, kind)
            finally:
                self.queue.task_done()
                self.metrics.depth.labels(target).set(self.queue.qsize())
            self.metrics.deliveries.labels(target, kind, outcome).inc()
