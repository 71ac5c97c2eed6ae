"""Every service's OpenAPI document is one a person can use (issue 13): the bearer scheme on
every operation that needs a token (Swagger UI's Authorize), the project's error model on each
operation for the answers it can give, enums where the values are a fixed set, tags and
summaries everywhere; and /docs and /redoc pages that load nothing from outside the service."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.legacy import FIELD_CODES
from tests.helpers.env import SERVICES
from tests.security.test_auth_matrix import operations, settings

ERROR_REF = "#/components/schemas/ErrorBody"
FIELD_REF = "#/components/schemas/FieldEnvelope"


@pytest.fixture(params=SERVICES)
async def service(request, tmp_path) -> AsyncIterator[tuple[str, httpx.AsyncClient, dict]]:
    import importlib

    name = request.param
    # The document and the pages need no database: the app is served without its lifespan.
    app = importlib.import_module(f"services.{name}.app").create_app(
        settings(name, "postgresql+asyncpg://postgres@127.0.0.1:5432/unused", tmp_path)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        doc = (await client.get("/openapi.json")).json()
        yield name, client, doc


def _error_schema(response: dict) -> tuple[str, dict]:
    media = response["content"]["application/json"]
    return media["schema"]["$ref"], media["example"]


async def test_every_operation_needing_a_token_has_the_bearer_scheme_and_its_errors(service):
    name, _, doc = service
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    checked = 0
    for method, path, op in operations(doc):
        assert op.get("tags") and op.get("summary"), (name, method, path)
        responses = op["responses"]
        field_route = any("legacy" in tag or "(field)" in tag for tag in op["tags"])
        want_ref = FIELD_REF if field_route else ERROR_REF
        if op["x-auth"]["rule"] == "open":
            assert "security" not in op, (name, method, path)
            continue
        checked += 1
        assert op["security"] == [{"bearer": []}], (name, method, path)
        expected = {"401", "403", "503"}
        if "{" in path:
            expected.add("404")
        if "requestBody" in op:
            expected |= {"413", "422"}
        if op.get("parameters"):
            expected.add("422")
        if method in ("POST", "PUT", "PATCH", "DELETE") and op["x-auth"]["rule"] == "change":
            expected.add("409")
        assert expected <= set(responses), (name, method, path, sorted(responses))
        for status in expected:
            ref, example = _error_schema(responses[status])
            assert ref == want_ref, (name, method, path, status)
            if ref == ERROR_REF:
                assert example["error"]["type"] and example["error"]["message"]
            else:
                assert example["code"] == FIELD_CODES[int(status)] and example["message"]
    assert checked > 0
    if name == "analysis":
        assert "429" in doc["paths"]["/analyze"]["post"]["responses"]
    # No framework default left: the 422 the services really answer is the project's.
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def _param(doc: dict, path: str, method: str, name: str) -> dict:
    op = doc["paths"][path][method]
    [param] = [p for p in op["parameters"] if p["name"] == name]
    schema = param["schema"]
    options = schema.get("anyOf", [schema])
    [enum] = [o for o in options if "$ref" in o or "enum" in o]
    if "$ref" in enum:
        enum = doc["components"]["schemas"][enum["$ref"].rsplit("/", 1)[1]]
    return enum


async def test_fixed_sets_of_values_are_enums(service):
    from services.optimizer.model.context import RolloutStatus
    from shared.contracts.decisions import Action, Outcome, Policy
    from shared.contracts.fleet import DesiredState, EdgeStatus, ObservedState

    name, _, doc = service
    if name == "optimizer":
        for param, enum in (("policy", Policy), ("action", Action), ("outcome", Outcome)):
            assert _param(doc, "/decisions", "get", param)["enum"] == [e.value for e in enum]
    if name == "setup":
        for param, enum in (("desired", DesiredState), ("observed", ObservedState)):
            assert _param(doc, "/deployments", "get", param)["enum"] == [e.value for e in enum]
    schemas = doc["components"]["schemas"]
    answers = {
        "optimizer": [("DecisionOut", "outcome", Outcome), ("RolloutOut", "status", RolloutStatus)],
        "setup": [("EdgeOut", "status", EdgeStatus), ("DeploymentOut", "observed", ObservedState)],
    }
    for model, field, enum in answers.get(name, []):
        ref = schemas[model]["properties"][field]["$ref"]
        values = schemas[ref.rsplit("/", 1)[1]]["enum"]
        assert values == [e.value for e in enum], (model, field)


async def test_docs_and_redoc_are_served_by_the_service_with_no_outside_url(service):
    name, client, _ = service
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        r = await client.get(page)
        assert r.status_code == 200, (name, page)
        urls = re.findall(
            r"""(?:src|href|url|import[^"']*from)\s*[=(]?\s*["']([^"']+)["']""", r.text
        )
        assert any(url.endswith(script) for url in urls), (name, page, urls)
        for url in urls:
            assert url.startswith("/"), f"{name}{page} loads {url} from outside the service"
            if not url.startswith("/openapi"):
                asset = await client.get(url)
                assert asset.status_code == 200 and len(asset.content) > 500, (name, url)
        assert "cdn" not in r.text.lower() and "http://" not in r.text and "https://" not in r.text


async def test_the_edge_agent_serves_its_docs_locally_too(tmp_path):
    from edge_ai.agent.app import create_agent_app
    from edge_ai.agent.settings import AgentSettings

    settings = AgentSettings(node="0x01", workdir=tmp_path, key="test-agent-key-0123456789")
    app = create_agent_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for page in ("/docs", "/redoc"):
            r = await client.get(page)
            assert r.status_code == 200, page
            assert "http://" not in r.text and "https://" not in r.text, page
        assert (await client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200


# Answers that are not one JSON document: live streams, videos, the live view.
NOT_JSON = ("/events", "/video", "/annotated", "/live")


async def test_every_json_answer_of_the_console_and_of_the_policy_routes_has_a_schema(service):
    """Issue 27: a typed answer on every route (no bare object), and a typed body for each
    policy's settings, unknown keys refused."""
    name, _, doc = service
    if name == "console":
        checked = 0
        for path, item in doc["paths"].items():
            if not path.startswith("/api/") or path.endswith(NOT_JSON):
                continue
            for method, op in item.items():
                ok = next(op["responses"][s] for s in op["responses"] if s.startswith("2"))
                schema = ok.get("content", {}).get("application/json", {}).get("schema")
                if "content" in ok or method != "delete":  # a 204 has no body
                    assert schema and (
                        "$ref" in schema or "oneOf" in schema or "items" in schema
                    ), (method, path, schema)
                    checked += 1
        assert checked >= 30
    if name in ("console", "optimizer"):
        from shared.contracts.decisions import Policy

        prefix = "/api" if name == "console" else ""
        for policy in Policy:
            op = doc["paths"][f"{prefix}/policies/{policy.value}"]["patch"]
            body = op["requestBody"]["content"]["application/json"]["schema"]
            ref = body["$ref"].rsplit("/", 1)[1]
            patch = doc["components"]["schemas"][ref]
            assert patch["additionalProperties"] is False and "enabled" in patch["properties"]
            assert not patch.get("required"), (policy, patch)
            answer = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            out = doc["components"]["schemas"][answer.rsplit("/", 1)[1]]
            assert out["properties"]["overrides"]["$ref"].endswith(f"/{ref}"), out
