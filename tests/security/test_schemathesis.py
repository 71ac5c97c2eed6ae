"""Schemathesis against every service, each a real process: no generated request gets a 5xx
(the analysis gateway with one CPU worker on a small random-weights model).

Each service's own OpenAPI document drives the generator (valid and invalid inputs: huge
integers, NUL characters, odd strings, wrong types), once with the operator token and once with
an edge token. Examples per operation are bounded (``EDGE_FUZZ_EXAMPLES``, default 15) so the file
runs in a few minutes on two cores; the failing requests are printed as curl commands. Where the
operation's documented rule (``x-auth``) refuses the caller, the token is refused before the
parameters and the body are validated, so a few examples (``REFUSED_EXAMPLES``) show the refusal is
never a server error: more would only repeat the same 403 (the auth matrix checks those answers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.result import Err
from schemathesis.generation.modes import GenerationMode

from shared.edge_tokens import issue_edge_token
from tests.helpers.env import OPERATOR, SIGNER
from tests.security.stack import SERVICES, running_services

EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "15"))
REFUSED_EXAMPLES = 2
# A long poll's wait is not what is fuzzed: a numeric ``wait_s`` is capped (and its default of 5 s
# replaced) so that GET /live/{nid}/next does not spend minutes waiting for frames nobody sends.
LONG_POLL_WAIT_S = 0.2
EDGE = {"Authorization": f"Bearer {issue_edge_token('0x01', SIGNER)}"}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from running_services(tmp_path_factory, analysis=True)


def _allowed(operation: Any, who: str) -> bool:
    """Whether the operation's documented rule (``x-auth``) lets ``who`` call it."""
    rule = operation.definition.raw["x-auth"]
    return bool(rule["operator"] if who == "operator" else rule["edge"])


def _fuzz(base: str, headers: dict[str, str], who: str) -> tuple[int, list[str]]:
    """Run every operation of ``base``'s schema; return (requests made, server errors found)."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    errors: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the schema cannot describe: say so
            raise result.err()
        operation = result.ok()
        examples = EXAMPLES if _allowed(operation, who) else REFUSED_EXAMPLES
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            made, failing = _fuzz_operation(operation, mode, base, headers, examples)
            calls += made
            errors.extend(failing)
    return calls, errors


def _fuzz_operation(
    operation: Any, mode: GenerationMode, base: str, headers: dict[str, str], examples: int
) -> tuple[int, list[str]]:
    """One operation in one generation mode: (requests made, up to two server errors)."""
    failing: list[str] = []
    calls = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        if operation.path.endswith("/next") and case.query is not None:
            wait = case.query.get("wait_s", LONG_POLL_WAIT_S)
            if isinstance(wait, int | float) and not isinstance(wait, bool):
                case.query["wait_s"] = min(wait, LONG_POLL_WAIT_S)
        elif operation.path.endswith("/next"):
            case.query = {"wait_s": LONG_POLL_WAIT_S}
        response = case.call(base_url=base, headers=dict(headers), timeout=30)
        if response.status_code >= 500 and len(failing) < 2:
            curl = case.as_curl_command(headers=dict(headers))
            answer = f"{response.status_code} {response.text[:200]}"
            failing.append(f"{operation.label} -> {answer}\n  {curl}")

    try:
        run()
    except Exception as exc:  # a generator that cannot build an example is not a server error
        if "Unsatisfiable" not in type(exc).__name__ and "Unsatisfiable" not in str(exc):
            raise
    return calls, failing


@pytest.mark.timeout(900)
@pytest.mark.parametrize("who", ["operator", "edge"])
@pytest.mark.parametrize("service", (*SERVICES, "analysis"))
def test_no_generated_request_gets_a_server_error(
    services: dict[str, str], service: str, who: str
) -> None:
    headers = OPERATOR if who == "operator" else EDGE
    calls, errors = _fuzz(services[service], headers, who)
    print(f"{service} as {who}: {calls} requests, {len(errors)} server errors")
    assert calls > 0
    assert not errors, "\n".join(errors)
