"""The analysis service's own answers, in the project's one error hierarchy (shared.errors)."""

from __future__ import annotations

from shared.errors import DomainError


class TooManyRequests(DomainError):
    """A token bucket is empty: retry after the seconds in Retry-After."""

    status_code = 429
    kind = "rate_limited"


class AnalysisTimeout(DomainError):
    """A synchronous request was not answered within its deadline; the job goes on (poll it)."""

    status_code = 504
    kind = "timeout"
