"""The field's compatibility routes: form fields or JSON in, ``{"code": "0000", "message": ...}``
out.

Failures keep their HTTP status (4xx/5xx) and answer the envelope with a non-"0000" code:

| code | meaning |
| ---- | ------- |
| 0000 | success |
| 1001 | invalid input (the message names the field) |
| 1004 | not found |
| 1005 | method not allowed on this route |
| 1009 | conflict |
| 1013 | payload too large |
| 1401 | missing or invalid token |
| 1403 | forbidden |
| 1503 | unavailable, retry later |
| 1502 | upstream error |
| 1500 | internal error |
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import DomainError, Invalid

log = logging.getLogger("edge.legacy")

SUCCESS = "0000"
_CODES = {
    400: "1001",
    422: "1001",
    404: "1004",
    405: "1005",
    409: "1009",
    413: "1013",
    401: "1401",
    403: "1403",
    502: "1502",
    503: "1503",
}
FIELD_CODES = _CODES  # HTTP status -> the field's code (1500 for any other)


def envelope(message: str = "success", **extra: Any) -> dict[str, Any]:
    return {"code": SUCCESS, "message": message, **extra}


def error_envelope(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": _CODES.get(status, "1500"), "message": message},
        status_code=status,
        headers=headers,
    )


def describe_validation_errors(errors) -> list[dict[str, str]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        out.append({"field": ".".join(loc) or "body", "problem": err.get("msg", "invalid")})
    return out


class LegacyRoute(APIRoute):
    """A route whose every failure answers in the field's envelope."""

    field_envelope = True  # read by the shared request layer and error handlers (input_checks)

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def legacy_handler(request: Request):
            try:
                return await handler(request)
            except DomainError as exc:
                text = f"{exc.field}: {exc.message}" if exc.field else exc.message
                return error_envelope(exc.status_code, text, exc.headers)
            except RequestValidationError as exc:
                problems = describe_validation_errors(exc.errors())
                text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
                return error_envelope(422, text)
            except StarletteHTTPException as exc:
                return error_envelope(exc.status_code, str(exc.detail), dict(exc.headers or {}))

        return legacy_handler


M = TypeVar("M", bound=BaseModel)


def form_or_json(model: type[M]) -> Callable[[Request], Any]:
    """A dependency reading ``model`` from a JSON body, form fields or the query string."""

    async def read(request: Request) -> M:
        content_type = request.headers.get("content-type", "")
        data: dict[str, Any]
        if "application/json" in content_type:
            raw = await request.body()
            try:
                data = json.loads(raw or b"{}")
            except UnicodeDecodeError as exc:
                raise Invalid(f"body is not valid UTF-8 (byte {exc.start})", field="body") from exc
            except json.JSONDecodeError as exc:
                raise Invalid(f"body is not valid JSON: {exc.msg}", field="body") from exc
            if not isinstance(data, dict):
                raise Invalid("body must be a JSON object", field="body")
        elif "form" in content_type:
            form = await request.form()
            data = {k: v for k, v in form.items() if isinstance(v, str)}
        else:
            data = {}
        for key, value in request.query_params.items():
            data.setdefault(key, value)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc

    read.__name__ = f"read_{model.__name__}"
    return read


def legacy_openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
            "required": True,
        }
    }
