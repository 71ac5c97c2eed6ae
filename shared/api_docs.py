"""The API documentation every service serves itself: Swagger UI at ``/docs`` and ReDoc at
``/redoc``, their scripts from pinned PyPI packages (``swagger-ui-bundle-v2``,
``star-openapi-redoc``) served by the service, never from a CDN: the platform runs on LANs with
no internet. And the OpenAPI document made usable in one place: the bearer scheme on every
operation that needs a token (from its ``x-auth`` rule, shared.auth), and the project's error
model on every operation, for the answers it can give."""

from __future__ import annotations

import copy
import html
import importlib.resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from shared.legacy import FIELD_CODES

SWAGGER_UI_VERSION = "5.31.0"
BEARER = "bearer"
ERROR_SCHEMA = "ErrorBody"
FIELD_ERROR_SCHEMA = "FieldEnvelope"


def swagger_ui_dir() -> Path:
    package = importlib.resources.files("swagger_ui_bundle")
    return Path(str(package / f"vendor/swagger-ui-{SWAGGER_UI_VERSION}"))


def redoc_dir() -> Path:
    return Path(str(importlib.resources.files("star_openapi_redoc") / "templates/redoc/js"))


_REDOC_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="modulepreload" href="{script}">
<style>body {{ margin: 0; padding: 0; }}</style></head>
<body><div id="redoc" data-spec="{spec}"></div>
<script type="module" src="{init}"></script></body></html>
"""

_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{css}">
<link rel="icon" href="{favicon}"></head>
<body><div id="swagger-ui" data-spec="{spec}" data-oauth2-redirect="{redirect}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script></body></html>
"""

# The pages' scripts are files, never inline (the policy below has no 'unsafe-inline' for
# scripts): each reads its parameters from data attributes of the page.
SWAGGER_INIT = """\
// Swagger UI for this service: the OpenAPI document and the redirect page come from the
// data attributes of #swagger-ui (the page itself holds no script, so that the page's
// Content-Security-Policy can refuse every inline script). Nothing is loaded from outside
// the service: no validator badge, no CDN.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: true,
    tryItOutEnabled: true,
    validatorUrl: null,
    oauth2RedirectUrl: root.dataset.oauth2Redirect,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
"""

REDOC_INIT = """\
// ReDoc for this service: the OpenAPI document comes from the data attribute of #redoc (the
// page itself holds no script, so that the page's Content-Security-Policy can refuse every
// inline script). The bundle is served by the service; telemetry is off, and the attribution
// logo it would fetch from a CDN is refused by the page's policy.
import { init } from "./assets/redoc.standalone.js";

const root = document.getElementById("redoc");
init(root.dataset.spec, { disableTelemetry: true }, root);
"""


# The pages may load nothing from outside the service: ReDoc's bundle would fetch its
# attribution logo from a CDN and Swagger UI its validator badge; the browser refuses them. No
# inline script either (issue 25): the pages' own scripts are the files above.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _local_only(page: Response) -> Response:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def _script(text: str) -> Response:
    return Response(text, media_type="text/javascript; charset=utf-8")


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI, with Authorize), ``/redoc`` and their assets, all served locally.
    The app must be created with ``docs_url=None, redoc_url=None``."""
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_dir()), name="swagger-ui-assets")
    app.mount("/redoc/assets", StaticFiles(directory=redoc_dir()), name="redoc-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        page = _SWAGGER_PAGE.format(
            title=html.escape(f"{app.title} - Swagger UI"),
            css=f"{root}/docs/assets/swagger-ui.css",
            favicon=f"{root}/docs/assets/favicon-32x32.png",
            spec=f"{root}{app.openapi_url}",
            redirect=f"{root}/docs/assets/oauth2-redirect.html",
            bundle=f"{root}/docs/assets/swagger-ui-bundle.js",
            init=f"{root}/docs/init.js",
        )
        return _local_only(HTMLResponse(page))

    @app.get("/docs/init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return _script(SWAGGER_INIT)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        page = _REDOC_PAGE.format(
            title=html.escape(app.title),
            script=f"{root}/redoc/assets/redoc.standalone.js",
            spec=f"{root}{app.openapi_url}",
            init=f"{root}/redoc/init.js",
        )
        return _local_only(HTMLResponse(page))

    @app.get("/redoc/init.js", include_in_schema=False)
    async def redoc_init() -> Response:
        return _script(REDOC_INIT)


# --- the error model, documented -----------------------------------------------------------

_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "title": ERROR_SCHEMA,
    "description": "Every error of the platform's own routes (shared.errors).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {
                    "type": "string",
                    "enum": [
                        "invalid",
                        "not_found",
                        "conflict",
                        "unauthorized",
                        "forbidden",
                        "payload_too_large",
                        "range_not_satisfiable",
                        "rate_limited",
                        "unavailable",
                        "upstream_error",
                        "internal",
                    ],
                },
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the field at fault, where one is"},
                "problems": {
                    "type": "array",
                    "description": "422 only: every field at fault",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                    },
                },
            },
        }
    },
}
_FIELD_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "title": FIELD_ERROR_SCHEMA,
    "description": "The field's envelope: the field's routes answer errors in it too.",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}

# status: (description, error type, example message, example field)
_ERRORS: dict[str, tuple[str, str, str, str | None]] = {
    "401": ("No valid bearer token", "unauthorized", "missing or invalid bearer token", None),
    "403": (
        "The token is valid but may not call this route",
        "forbidden",
        "this route needs the operator's or a service's token",
        None,
    ),
    "404": ("What the path names does not exist", "not_found", "edge 987654 not found", None),
    "409": (
        "Clashes with existing state (a duplicate, still in use)",
        "conflict",
        "an edge named 'edge-a' already exists",
        "name",
    ),
    "413": (
        "The body is over the service's limit",
        "payload_too_large",
        "request body over 1048576 bytes",
        None,
    ),
    "416": (
        "The byte range (Range) starts past the end of the file: Content-Range: bytes */<size>",
        "range_not_satisfiable",
        "the range starts past the end of the file (10240 bytes)",
        "Range",
    ),
    "422": ("A value is wrong; the field is named", "invalid", "name: field required", "name"),
    "429": (
        "The caller's rate is spent: retry after Retry-After seconds",
        "rate_limited",
        "too many requests: retry in 1 s",
        None,
    ),
    "502": (
        "A service this one calls answered with an error",
        "upstream_error",
        "setup answered 500",
        None,
    ),
    "503": (
        "A dependency (database, queue, another service) is unavailable: retry later",
        "unavailable",
        "database unavailable",
        None,
    ),
}
_CHANGES = ("post", "put", "patch", "delete")


def _error_response(status: str, field_route: bool) -> dict[str, Any]:
    description, kind, message, field = _ERRORS[status]
    if field_route:
        schema = {"$ref": f"#/components/schemas/{FIELD_ERROR_SCHEMA}"}
        code = FIELD_CODES.get(int(status), "1500")
        example: dict[str, Any] = {"code": code, "message": message}
    else:
        schema = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
        error: dict[str, Any] = {"type": kind, "message": message}
        if field is not None:
            error["field"] = field
        example = {"error": error}
    return {
        "description": description,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def documented_error(status: str) -> dict[str, Any]:
    """The OpenAPI response of one of the project's error answers (its error model)."""
    return _error_response(status, False)


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The error answers an operation can give, from what it is: a token needed (401, 403, and
    503 while setup's revocation list or the database is away), a path naming something (404),
    a change (409), a body (413), anything to validate (422), a rate limit (429, its own
    ``x-rate-limited``)."""
    rule = operation.get("x-auth", {}).get("rule", "open")
    statuses: list[str] = []
    if rule != "open":
        statuses += ["401", "403"]
    if "{" in path or ("requestBody" in operation and rule == "change"):
        statuses.append("404")  # what the path or the body names (edge_id, ai_id) may not exist
    if method in _CHANGES and rule == "change":
        statuses.append("409")
    if "requestBody" in operation:
        statuses.append("413")
    if "requestBody" in operation or operation.get("parameters"):
        statuses.append("422")
    if operation.get("x-rate-limited"):
        statuses.append("429")
    if rule != "open":
        statuses.append("503")
    return statuses


def document_security_and_errors(schema: dict[str, Any], field_paths: set[str]) -> None:
    """The bearer scheme on every operation that needs a token; the error answers on each
    (the field's envelope on the field's routes). Idempotent."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator's token (EDGE_OPERATOR_TOKEN), a service's credential or "
        "an edge's token, as the operation's \"Who may call\" line says.",
    }
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = copy.deepcopy(_ERROR_BODY)
    schemas[FIELD_ERROR_SCHEMA] = copy.deepcopy(_FIELD_ENVELOPE)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _promote_example(operation, schemas)
            rule = operation.get("x-auth", {}).get("rule", "open")
            if rule != "open":
                operation["security"] = [{BEARER: []}]
            responses = operation.setdefault("responses", {})
            for status in error_statuses(path, method, operation):
                responses[status] = _error_response(status, path in field_paths)


def request_example(operation: dict[str, Any], schemas: dict[str, Any]) -> Any | None:
    """The first example of the operation's JSON body: its media type's, else its schema's."""
    media = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if media is None:
        return None
    if "example" in media:
        return media["example"]
    if media.get("examples"):
        return next(iter(media["examples"].values())).get("value")
    body = media.get("schema", {})
    # An optional body (``Model | None``): the model's examples.
    body = next((option for option in body.get("anyOf", []) if "$ref" in option), body)
    ref = body.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        body = schemas.get(ref.rsplit("/", 1)[1], {})
    examples = body.get("examples")
    return examples[0] if isinstance(examples, list) and examples else None


def _promote_example(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A model's example on the operation's JSON body itself, where Swagger UI's "Try it out"
    takes it from (else it builds one from the schema: values the service refuses)."""
    media = operation.get("requestBody", {}).get("content", {}).get("application/json")
    example = request_example(operation, schemas)
    if media is not None and example is not None and "examples" not in media:
        media["example"] = example
