"""What no service can store, refused in one place before any route sees it (see shared.middleware).

PostgreSQL refuses a NUL character in text and JSON, a Python string holding an unpaired UTF-16
surrogate cannot be encoded for it, and no column holds an integer beyond 64 bits. A request
carrying one of these in its path, its query string or a JSON or form body is answered 422 naming
the field, in one place for every service, instead of failing deep inside (a 500, or, in a group
commit, every other record's failure too). The checks are cheap on the common path: a body is
parsed a second time only when a byte scan finds a suspect escape.

Integers that fit 64 bits but not the column (a 32-bit id of 2^31) are caught where the database
refuses them: ``database_value_error`` turns that refusal into a 422 naming the path, query or
body field that holds the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, MutableMapping
from typing import Any, get_args
from urllib.parse import parse_qsl

from starlette.routing import Match

from shared.errors import DomainError, Invalid

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A node id (the field's "0x01", or a device's login name stored as its node): what setup accepts
# and what the console passes on in a path to the VMS.
NID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")
# A JSON escape of NUL or of a UTF-16 surrogate (paired or not: the parsed text tells), a raw NUL.
_SUSPECT_JSON = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|\x00")
_SURROGATE = re.compile("[\ud800-\udfff]")
_VALUE_IN_MESSAGE = re.compile(r"argument \$\d+: (?P<value>.+?) \(")
JSON_BODY_KEY = "edge.json_body"  # where the middleware leaves a checked JSON body in the scope


def string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character (not accepted)"
    if _SURROGATE.search(value):
        return "contains an unpaired surrogate (not valid Unicode)"
    return None


def integer_problem(text: str) -> str | None:
    if not _INTEGER.fullmatch(text):
        return None
    digits = text.lstrip("+-")
    if len(digits) > 19 or not INT64_MIN <= int(text) <= INT64_MAX:
        return f"{text[:40]} is out of range (a 64-bit integer at most)"
    return None


def match_route(scope: MutableMapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The route a request goes to (the one the router chose, else the first that matches)."""
    route = scope.get("route")
    if route is not None and not hasattr(route, "original_router"):
        return route, scope.get("path_params") or {}
    app = scope.get("app")
    return _find_route(getattr(getattr(app, "router", None), "routes", ()), scope) or (None, {})


def _find_route(routes: Any, scope: MutableMapping[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    partial: tuple[Any, dict[str, Any]] | None = None
    for candidate in routes:
        inner = getattr(candidate, "original_router", None)
        if inner is not None:  # FastAPI's included router: look among its own routes
            prefix = getattr(getattr(candidate, "include_context", None), "prefix", "") or ""
            path: str = scope.get("path", "")
            if not path.startswith(prefix):
                continue
            found = _find_route(
                inner.routes, {**scope, "path": path[len(prefix) :]} if prefix else scope
            )
            if found is not None and getattr(found[0], "methods", None) is not None:
                methods = found[0].methods
                if not methods or scope.get("method") in methods:
                    return found
            partial = partial or found
            continue
        try:
            match, child = candidate.matches(scope)
        except Exception:  # a route kind that needs more of the scope than a bare request has
            continue
        if match is Match.FULL:
            return candidate, child.get("path_params") or {}
        if match is Match.PARTIAL and partial is None:
            partial = (candidate, child.get("path_params") or {})
    return partial


def is_field_route(scope: MutableMapping[str, Any]) -> bool:
    """Whether the request is on one of the field's routes (answers in the field's envelope)."""
    route, _ = match_route(scope)
    return bool(getattr(route, "field_envelope", False))


def check_target(scope: MutableMapping[str, Any]) -> DomainError | None:
    """NUL characters in the path or the query string, and integers beyond 64 bits in the path
    or query parameters the route declares as integers."""
    path: str = scope.get("path", "")
    query: bytes = scope.get("query_string") or b""
    long_in_path = _LONG_DIGITS.search(path) is not None
    long_in_query = _LONG_DIGITS_BYTES.search(query) is not None if query else False
    nul_in_query = b"%00" in query or b"\x00" in query
    if not ("\x00" in path or long_in_path or long_in_query or nul_in_query):
        return None
    route, params = match_route(scope)
    integers = _integer_params(route)
    if "\x00" in path:
        name = next((k for k, v in params.items() if "\x00" in str(v)), "path")
        return Invalid("contains a NUL character (not accepted)", field=name)
    for name, value in params.items():
        problem = integer_problem(str(value)) if name in integers else None
        if problem:
            return Invalid(problem, field=name)
    for key, value in parse_qsl(
        query.decode("latin-1"), keep_blank_values=True, encoding="latin-1"
    ):
        problem = string_problem(key) or string_problem(value)
        if problem:
            return Invalid(problem, field=key if "\x00" not in key else "query")
        problem = integer_problem(value) if key in integers else None
        if problem:
            return Invalid(problem, field=key)
    return None


_INTEGER_PARAMS: dict[int, frozenset[str]] = {}


def _integer_params(route: Any) -> frozenset[str]:
    """Names of the path and query parameters ``route`` declares as integers (cached per route)."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return frozenset()
    names = _INTEGER_PARAMS.get(id(route))
    if names is None:
        found: set[str] = set()
        pending = [dependant]
        while pending:  # the route's own parameters and those of its dependencies
            current = pending.pop()
            pending.extend(getattr(current, "dependencies", ()))
            for param in [*current.path_params, *current.query_params]:
                annotation = param.field_info.annotation
                if annotation is int or int in get_args(annotation):
                    found.add(param.alias or param.name)
        names = _INTEGER_PARAMS[id(route)] = frozenset(found)
    return names


class BodyCheck:
    """Collects a JSON or form body as it arrives; ``finish`` names a field holding a NUL or an
    unpaired surrogate. Other bodies (files, multipart) are not looked at."""

    def __init__(self, kind: str):
        self.kind = kind
        self.chunks: list[bytes] = []

    @classmethod
    def for_content_type(cls, content_type: bytes) -> BodyCheck | None:
        ct = content_type.lower()
        if b"json" in ct:
            return cls("json")
        if b"x-www-form-urlencoded" in ct:
            return cls("form")
        return None

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self.chunks.append(chunk)

    def finish(self) -> tuple[bytes, DomainError | None]:
        body = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks = []
        if self.kind == "json":
            # Two substring searches (C, a few GB/s) settle most bodies; the pattern only runs
            # over a body holding a \u escape or a raw NUL.
            if (b"\\u" not in body and b"\x00" not in body) or not _SUSPECT_JSON.search(body):
                return body, None
            try:
                data = json.loads(body)
            except ValueError:
                return body, None  # not JSON: the route answers that itself
            found = next(_bad_strings(data, ""), None)
        else:
            if b"%00" not in body and b"\x00" not in body:
                return body, None
            pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
            found = next(((k, string_problem(v) or "") for k, v in pairs if "\x00" in k + v), None)
        if found is None:
            return body, None
        field, problem = found
        return body, Invalid(problem, field=field or "body")


def _bad_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        problem = string_problem(value)
        if problem:
            yield path, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            problem = string_problem(key)
            if problem:
                yield (path or "body"), f"a key {problem}"
            yield from _bad_strings(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_strings(item, f"{path}[{index}]" if path else f"[{index}]")


def _paths_of(value: Any, wanted: str, path: str = "") -> Iterator[str]:
    if (
        isinstance(value, (int, float, str))
        and not isinstance(value, bool)
        and str(value) == wanted
    ):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths_of(item, wanted, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths_of(item, wanted, f"{path}[{index}]")


def database_value_error(scope: MutableMapping[str, Any], exc: BaseException) -> Invalid | None:
    """A 422 for a value the database refused as data (out of a column's range, not encodable,
    NUL), naming the path, query or body field that held it; None for any other error."""
    import asyncpg  # only services with a database get here

    cause: BaseException | None = exc
    while cause is not None and not isinstance(
        cause, (asyncpg.exceptions.DataError, asyncpg.exceptions._base.DataError)
    ):
        cause = cause.__cause__ or getattr(cause, "orig", None)
    if cause is None:
        return None
    text = str(cause)
    found = _VALUE_IN_MESSAGE.search(text)
    value = found["value"].strip("'\"") if found else None
    field = _field_holding(scope, value) if value else None
    reason = text.split("(", 1)[1].rstrip(")") if found and "(" in text else text.splitlines()[0]
    shown = f"{value[:40]} " if value else ""
    return Invalid(f"{shown}is not accepted ({reason[:120]})".strip(), field=field or "body")


def _field_holding(scope: MutableMapping[str, Any], value: str) -> str | None:
    for key, item in (scope.get("path_params") or {}).items():
        if str(item) == value:
            return str(key)
    for key, item in parse_qsl(
        (scope.get("query_string") or b"").decode("latin-1"), keep_blank_values=True
    ):
        if item == value:
            return key
    body = scope.get(JSON_BODY_KEY)
    if body:
        try:
            return next(_paths_of(json.loads(body), value), None)
        except ValueError:
            return None
    return None
