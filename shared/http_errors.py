"""How every HTTP app of the project answers errors: domain errors in the project's error model
(or the field's envelope on a field route), the framework's own errors likewise, and anything
unexpected as a 500 without details. No database code here: the edge agent installs these too;
the services add the database translations on top (shared.app)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import DomainError, Invalid
from shared.input_checks import is_field_route
from shared.legacy import describe_validation_errors, error_envelope
from shared.logging import request_id_var

log = logging.getLogger("edge.app")


def error_response(exc: DomainError) -> JSONResponse:
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code, headers=exc.headers)


def answer(request: Request, exc: DomainError) -> JSONResponse:
    """``exc`` in the field's envelope on a field route, else in the project's error model."""
    if is_field_route(request.scope):
        text = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return error_envelope(exc.status_code, text, exc.headers)
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return answer(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # The framework's own answers (404 no route, 405 wrong method): the field's envelope on a
        # field route, the framework's usual body elsewhere. Its 400 (a body it cannot parse: bytes
        # that are not JSON text, a multipart over its part limits) is bad input like any other:
        # 422 naming the body, in the project's error model.
        if exc.status_code == 400:
            return answer(request, Invalid(f"the body cannot be read: {exc.detail}", field="body"))
        if is_field_route(request.scope):
            return error_envelope(exc.status_code, str(exc.detail), dict(exc.headers or {}))
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = describe_validation_errors(exc.errors())
        text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        if is_field_route(request.scope):
            return error_envelope(422, text)
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        body = {
            "error": {
                "type": "invalid",
                "message": text,
                "field": first["field"],
                "problems": problems,
            }
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        if is_field_route(request.scope):
            return error_envelope(500, "internal error")
        rid = request_id_var.get()
        error = {"type": "internal", "message": "internal error", "request_id": rid}
        return JSONResponse({"error": error}, status_code=500)
