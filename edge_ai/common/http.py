"""The edge side's one HTTP client layer: the edge agent, the edge programs and ``edgectl`` reach
the services through it (services reach each other through ``shared.service_client``).

- ``async_client`` and ``sync_client`` are the only places an httpx client is built outside the
  services' layer (ruff's banned-API rule keeps it so, see pyproject.toml).
- ``EdgeClient`` (async) and ``EdgeSyncClient`` are one service at one base URL with the caller's
  credential; a transport failure or an error answer becomes a ``CallFailed`` here, once: its
  ``status`` (None when the service could not be reached), the service's message and field, and
  the ``Retry-After`` it asked for.

Python 3.8 and httpx only: it ships in every AI package (no ``shared``, no pydantic); the
annotations are not evaluated at run time (``from __future__ import annotations``).
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx

# The client type, for annotations outside this module (build one with ``async_client``).
AsyncHttp = httpx.AsyncClient
# Answers that mean "the other side is busy or down": try again later.
RETRY_LATER = frozenset({408, 425, 429, 502, 503, 504})


def async_client(
    base_url: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    timeout: float | httpx.Timeout = 10.0,
    verify: bool | str | ssl.SSLContext = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An httpx client for the edge side (the edge programs' record senders keep their own
    delivery rules on top of it: ``vms_client``)."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers=dict(headers or {}),
        auth=auth,
        timeout=timeout,
        verify=verify,
        transport=transport,
    )


def sync_client(
    base_url: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout = 10.0,
    verify: bool | str | ssl.SSLContext = True,
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, headers=dict(headers or {}), timeout=timeout, verify=verify
    )


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks for; None without one (or for an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_of(response: httpx.Response) -> tuple[str, str | None]:
    """The message and field of an error answer: the project's error model, the field's
    envelope (``message``) or FastAPI's ``detail``; else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return (response.text[:300] or response.reason_phrase), None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            field = error.get("field")
            return str(error["message"]), str(field) if field else None
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key]), None
    return jsonlib.dumps(body)[:300], None


class CallFailed(Exception):
    """A call that did not succeed: the service unreachable (``status`` None) or its error
    answer (``status``, ``message``, ``field``, ``retry_after``)."""

    def __init__(
        self,
        what: str,
        message: str,
        *,
        status: int | None = None,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.what = what
        self.message = message
        self.status = status
        self.field = field
        self.retry_after = retry_after
        said = f"answered {status}: " if status is not None else ""
        super().__init__(f"{what}: {said}{message}")

    @property
    def unreachable(self) -> bool:
        return self.status is None

    @property
    def retry_later(self) -> bool:
        """Worth trying again as it is: unreachable, busy, or down."""
        return self.status is None or self.status in RETRY_LATER or self.status >= 500

    @property
    def detail(self) -> str:
        """The service's message with its field, for one line of output."""
        if self.field and self.field not in self.message:
            return f"{self.message} ({self.field})"
        return self.message


def _unreachable(what: str, exc: httpx.HTTPError) -> CallFailed:
    reason = str(exc) or type(exc).__name__
    return CallFailed(what, f"unreachable ({type(exc).__name__}: {reason})")


def _refused(what: str, response: httpx.Response) -> CallFailed:
    message, field = error_of(response)
    return CallFailed(
        what,
        message,
        status=response.status_code,
        field=field,
        retry_after=retry_after(response),
    )


def _token_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _timeout_arg(timeout: float | httpx.Timeout | None) -> Any:
    return httpx.USE_CLIENT_DEFAULT if timeout is None else timeout


class EdgeClient:
    """One service reached from the edge side (async). ``token``: a fixed bearer token;
    ``auth``: one read on every request (the agent's renewed token)."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        token: str | None = None,
        auth: httpx.Auth | None = None,
        timeout: float | httpx.Timeout = 10.0,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.http = async_client(
            self.base_url,
            headers=_token_headers(token),
            auth=auth,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )

    async def __aenter__(self) -> EdgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: tuple[int, ...] = (),
        request_timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """A success (or a status in ``allow``); anything else raised as ``CallFailed``."""
        what = f"{self.name} {method} {path}"
        try:
            response = await self.http.request(
                method,
                path,
                json=json,
                content=content,
                params=params,
                headers=headers,
                timeout=_timeout_arg(request_timeout),
            )
        except httpx.HTTPError as exc:
            raise _unreachable(what, exc) from exc
        if response.is_success or response.status_code in allow:
            return response
        raise _refused(what, response)

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON of a successful answer (None for an empty body)."""
        response = await self.request(method, path, **kw)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CallFailed(f"{self.name} {path}", "the answer is not JSON") from exc

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        request_timeout: float | httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed successful answer (a file), open while the block runs; failures are
        raised as ``request`` raises them, also while the body is read."""
        what = f"{self.name} {method} {path}"
        try:
            async with self.http.stream(
                method, path, headers=headers, timeout=_timeout_arg(request_timeout)
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise _refused(what, response)
                yield response
        except httpx.HTTPError as exc:
            raise _unreachable(what, exc) from exc


class EdgeSyncClient:
    """One service, blocking (``edgectl``): the same rules as ``EdgeClient``."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout = 30.0,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.http = sync_client(
            self.base_url,
            headers={**_token_headers(token), **dict(headers or {})},
            timeout=timeout,
            verify=verify,
        )

    def __enter__(self) -> EdgeSyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: tuple[int, ...] = (),
        request_timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        what = f"{self.name} {method} {path}"
        try:
            response = self.http.request(
                method,
                path,
                json=json,
                content=content,
                params=params,
                headers=headers,
                timeout=_timeout_arg(request_timeout),
            )
        except httpx.HTTPError as exc:
            raise _unreachable(what, exc) from exc
        if response.is_success or response.status_code in allow:
            return response
        raise _refused(what, response)

    def json(self, method: str, path: str, **kw: Any) -> Any:
        response = self.request(method, path, **kw)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CallFailed(f"{self.name} {path}", "the answer is not JSON") from exc

    @contextlib.contextmanager
    def stream(
        self, method: str, path: str, *, request_timeout: float | httpx.Timeout | None = None
    ) -> Iterator[httpx.Response]:
        what = f"{self.name} {method} {path}"
        try:
            with self.http.stream(method, path, timeout=_timeout_arg(request_timeout)) as response:
                if not response.is_success:
                    response.read()
                    raise _refused(what, response)
                yield response
        except httpx.HTTPError as exc:
            raise _unreachable(what, exc) from exc
