"""Domain errors. Services raise these; one handler maps them to HTTP (see shared.app)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status_code = 400
    kind = "error"

    def __init__(
        self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}

    def to_dict(self) -> dict:
        body: dict = {"type": self.kind, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class Invalid(DomainError):
    """The request is well-formed but a value in it is wrong."""

    status_code = 422
    kind = "invalid"


class NotFound(DomainError):
    """A referenced resource does not exist."""

    status_code = 404
    kind = "not_found"


class Conflict(DomainError):
    """The request clashes with existing state (duplicate, in use)."""

    status_code = 409
    kind = "conflict"


class Unauthorized(DomainError):
    """No valid credentials."""

    status_code = 401
    kind = "unauthorized"

    def __init__(self, message: str = "missing or invalid bearer token", **kw):
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class Forbidden(DomainError):
    """Valid credentials without the right to do this."""

    status_code = 403
    kind = "forbidden"


class PayloadTooLarge(DomainError):
    """The body is over the configured limit."""

    status_code = 413
    kind = "payload_too_large"


class RangeNotSatisfiable(DomainError):
    """A byte range that starts past the end of the file (HTTP ``Range``); the answer says the
    file's size (``Content-Range: bytes */<size>``)."""

    status_code = 416
    kind = "range_not_satisfiable"

    def __init__(self, size: int, **kw):
        kw.setdefault("headers", {"Content-Range": f"bytes */{size}"})
        kw.setdefault("field", "Range")
        super().__init__(f"the range starts past the end of the file ({size} bytes)", **kw)


class Unavailable(DomainError):
    """A dependency is down or the service is overloaded; retry later."""

    status_code = 503
    kind = "unavailable"


class UpstreamError(DomainError):
    """Another service or a runtime answered with an error."""

    status_code = 502
    kind = "upstream_error"
