"""Asymmetric credentials (issue 25 item 5): setup signs, every other service verifies with public
keys only, so no service but setup can mint a credential; keys fetched from setup and rotated by
key id; HMAC credentials only during the migration window."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import itertools
import os
import time
from pathlib import Path

import httpx
import pytest

from edgectl.stack.config import SIGNING_KEY, StackSettings, load_secrets
from edgectl.stack.run import Stack
from shared.agent_keys import derived_secret
from shared.auth import Principal, identify
from shared.credentials import (
    decode_credential,
    issue_operator_credential,
    issue_service_credential,
)
from shared.edge_tokens import issue_edge_token
from shared.errors import Unauthorized
from shared.settings import settings_class
from shared.signing import KeyRing, Signer, load_private, write_private_key
from tests.conftest import running_app
from tests.helpers.env import (
    EDGE_TOKEN_SECRET,
    OPERATOR,
    SERVICE_TOKEN,
    SIGNER,
    free_port,
    service_credential,
    service_env,
    settings_for,
)
from tests.helpers.processes import start_service

# Every service but setup; the console holds no operator token either (setup exchanges the one
# presented at sign-in for a short-lived credential: tests/security/test_console_credentials.py).
VERIFIERS = ("master", "optimizer", "vms", "analysis", "console")


def _settings(service: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """The service's settings exactly as its process reads them from ``env``."""
    for name in list(os.environ):
        prefixes = ("EDGE_", "SETUP_", "MASTER_", "VMS_", "OPTIMIZER_", "ANALYSIS_", "CONSOLE_")
        if name.startswith(prefixes):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings_class(f"services.{service}.settings")()


def _strength(principal: Principal) -> str:
    return principal.kind if principal.kind != "service" else f"service:{principal.name}"


def test_no_service_but_setup_can_mint_a_credential(tmp_path, monkeypatch):
    """Every other service's configuration as `edgectl up` gives it (environment, files it names,
    keys): nothing in it signs, and nothing derived from it is accepted as more than that
    service's own credential."""
    stack = Stack(StackSettings(data_dir=tmp_path, story=False))
    secrets = load_secrets(stack.data_dir)
    base = {"EDGE_DATABASE_URL": "postgresql+asyncpg://unused/unused", **secrets}
    envs = {name: stack._service_env(name, base, secrets) for name in ("setup", *VERIFIERS)}
    setup_env = envs["setup"]
    judges = {name: _settings(name, envs[name], monkeypatch) for name in envs}
    rings = {name: s.key_ring() for name, s in judges.items()}
    assert rings["setup"].signer is not None

    # Control: setup's key does mint credentials every service accepts.
    signer = judges["setup"].signer()
    assert signer is not None
    for name, judge in judges.items():
        minted = issue_operator_credential(signer)
        assert identify(judge, minted, None, rings[name]).kind == "operator"

    for holder in VERIFIERS:
        env = envs[holder]
        held = judges[holder]
        # No private key: not in its settings, its key ring, nor in any file its environment names.
        assert held.signer() is None and rings[holder].signer is None
        assert "SETUP_SIGNING_KEY_FILES" not in env
        assert not any(k in env for k in ("EDGE_SERVICE_TOKEN", "EDGE_EDGE_TOKEN_SECRET"))
        assert "EDGE_OPERATOR_TOKEN" not in env
        assert secrets["EDGE_OPERATOR_TOKEN"] not in env.values() and held.operator_token is None
        values = [v for v in env.values() if v]
        values += held.secret_values()
        for value in values:
            path = Path(value)
            candidate = (
                path.read_bytes() if len(value) < 4096 and path.is_file() else value.encode()
            )
            with pytest.raises((ValueError, TypeError)):
                load_private(candidate)

        # Everything a compromised process could try with what it holds.
        own = held.own_credential()
        attempts: list[str] = [own]
        for value in values:
            attempts += [
                value,
                issue_edge_token("0x01", value),  # an HMAC edge token under any held value
                *_legacy_credentials(value),
                "svc_" + hashlib.sha256(value.encode()).hexdigest()[:40],
            ]
        # A signature with a key of its own making, presented under setup's key id.
        forger = Signer(load_private(_new_pem(tmp_path)))
        forged = forger.sign("opr_9999999999.00000000")
        kid = signer.kid
        attempts.append(forged.replace(forger.kid, kid))
        attempts.append(issue_edge_token("0x01", forger).replace(forger.kid, kid))
        # The own credential re-labelled as another service or the operator keeps no signature.
        _, _, rest = own.partition(".")
        attempts += [
            f"svc_{other}.{rest}" for other in ("setup", "master", "vms") if other != holder
        ]
        attempts.append(f"opr_{rest.split('.', 1)[1]}")

        for attempt, (judge_name, judge) in itertools.product(set(attempts), judges.items()):
            try:
                principal = identify(judge, attempt, None, rings[judge_name])
            except Unauthorized:
                continue
            # The only token a service holds that is accepted is its own credential, as itself.
            assert attempt == own and _strength(principal) == f"service:{holder}", (
                holder,
                judge_name,
                attempt[:30],
                principal,
            )
    assert setup_env["SETUP_SIGNING_KEY_FILES"] == str(stack.data_dir / SIGNING_KEY)


def _legacy_credentials(root: str) -> list[str]:
    """The HMAC credentials of old, derived from ``root`` as EDGE_SERVICE_TOKEN was."""
    return [
        "svc_"
        + hmac.new(root.encode(), f"service:{name}".encode(), hashlib.sha256).hexdigest()[:40]
        for name in ("setup", "master", "optimizer", "vms", "analysis")
    ]


def _new_pem(tmp_path: Path) -> bytes:
    path = tmp_path / f"forger-{os.urandom(4).hex()}.pem"
    write_private_key(path)
    return path.read_bytes()


def test_service_credentials_get_only_their_grants_and_expire():
    keys = KeyRing(static=[SIGNER.public])
    vms = issue_service_credential("vms", SIGNER)
    claims = decode_credential(vms, keys)
    assert claims is not None and claims.kind == "service" and claims.name == "vms"
    principal = identify(settings_for("optimizer", "x"), vms, None, keys)
    assert principal.may(("setup", "GET", "/edges/node-ids"))
    assert not principal.may(("setup", "POST", "/clusters"))
    assert not principal.may(("setup", "POST", "/deployments/bulk"))  # the optimizer's
    expired = issue_service_credential("vms", SIGNER, ttl_s=-1)
    with pytest.raises(Unauthorized):
        identify(settings_for("optimizer", "x"), expired, None, keys)
    with pytest.raises(ValueError):
        issue_service_credential("legacy", SIGNER)  # the shared token's scope is never signed


def test_legacy_hmac_credentials_only_during_the_migration_window():
    legacy_edge = issue_edge_token("0x07", EDGE_TOKEN_SECRET)
    legacy_vms = settings_for("vms", "x").legacy_service_credentials()["vms"]
    today = datetime.datetime.now(datetime.UTC).date()
    keys = KeyRing(static=[SIGNER.public])
    for until, accepted in (
        (None, False),
        (today - datetime.timedelta(days=1), False),
        (today, True),
        (today + datetime.timedelta(days=30), True),
    ):
        judge = settings_for("optimizer", "x", legacy_credentials_until=until, vms_token=None)
        for token, expected in ((legacy_edge, "edge"), (legacy_vms, "service:vms")):
            if accepted:
                assert _strength(identify(judge, token, None, keys)) == expected, until
            else:
                with pytest.raises(Unauthorized):
                    identify(judge, token, None, keys)
        # Signed credentials are accepted whatever the window.
        assert identify(judge, service_credential("vms"), None, keys).name == "vms"


def test_the_operator_token_is_checked_by_its_hash_alone():
    digest = hashlib.sha256(b"operator-token-of-this-test-0123").hexdigest()
    judge = settings_for("vms", "x", operator_token=None, operator_token_sha256=digest)
    assert judge.operator_token is None
    keys = KeyRing(static=[SIGNER.public])
    assert identify(judge, "operator-token-of-this-test-0123", None, keys).kind == "operator"
    with pytest.raises(Unauthorized):
        identify(judge, digest, None, keys)  # the hash itself is no credential


@pytest.mark.timeout(120)
async def test_keys_fetched_from_setup_and_rotated_by_key_id(db, tmp_path):
    """A VMS with no key of its own configuration reads setup's GET /keys; setup rotates (the new
    key first, the old still listed): the VMS accepts both generations within seconds (an unknown
    key id makes it read the keys again); once the old key is dropped, its tokens are refused."""
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    write_private_key(old)
    write_private_key(new)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def start_setup(files: str):
        env = service_env(db, SETUP_SIGNING_KEY_FILES=files, SETUP_NOTIFY_MASTER="false")
        return start_service("setup", env=env, port=port, tmp_path=tmp_path)

    from services.vms.app import create_app

    settings = settings_for(
        "vms",
        db,
        setup_url=base,
        public_keys=None,
        fetch_public_keys=True,
        public_keys_refresh_s=1.0,
    )
    proc = start_setup(str(old))
    try:
        keys = httpx.get(f"{base}/keys").json()["keys"]
        old_signer, new_signer = Signer.from_file(old), Signer.from_file(new)
        assert [k["kid"] for k in keys] == [old_signer.kid]
        async with running_app(create_app(settings)) as vms:
            assert vms._transport.app.state.key_ring.signer is None  # type: ignore[attr-defined]
            r = await vms.get(
                "/nodes/state",
                headers={"Authorization": f"Bearer {issue_operator_credential(old_signer)}"},
            )
            assert r.status_code == 200, r.text
            proc.stop()
            proc = start_setup(f"{new},{old}")
            assert [k["kid"] for k in httpx.get(f"{base}/keys").json()["keys"]] == [
                new_signer.kid,
                old_signer.kid,
            ]
            for signer in (new_signer, old_signer):
                token = issue_operator_credential(signer)
                # An unknown key id makes the VMS read the keys again (at most every 5 s, and
                # every public_keys_refresh_s anyway): accepted within that, not only at once.
                deadline = time.monotonic() + 8
                while True:
                    auth = {"Authorization": f"Bearer {token}"}
                    r = await vms.get("/nodes/state", headers=auth)
                    if r.status_code == 200 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.25)
                assert r.status_code == 200, (signer.kid, r.text)
            # Setup issues with the new key.
            r = httpx.post(f"{base}/credentials", json={"service": "vms"}, headers=OPERATOR)
            assert r.status_code == 201 and r.json()["kid"] == new_signer.kid, r.text
            proc.stop()
            proc = start_setup(str(new))
            stale = {"Authorization": f"Bearer {issue_operator_credential(old_signer)}"}
            for _ in range(40):  # the VMS re-reads the keys every second here
                r = await vms.get("/nodes/state", headers=stale)
                if r.status_code == 401:
                    break
                await asyncio.sleep(0.25)
            assert r.status_code == 401, "a dropped key still verifies after 10 s"
    finally:
        proc.stop()


async def test_setup_issues_credentials_to_the_operator_only(setup_client):
    r = await setup_client.post(
        "/credentials", json={"service": "analysis", "ttl_days": 2}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    body = r.json()
    claims = decode_credential(body["token"], KeyRing(static=[SIGNER.public]))
    assert claims is not None and claims.name == "analysis"
    for who in ("master", "vms", "analysis"):
        r = await setup_client.post(
            "/credentials",
            json={"kind": "operator"},
            headers={"Authorization": f"Bearer {service_credential(who)}"},
        )
        assert r.status_code == 403, (who, r.text)
    r = await setup_client.post("/credentials", json={"service": "legacy"}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["error"]["field"] == "service", r.text
    assert (await setup_client.get("/keys")).json()["keys"][0]["kid"] == SIGNER.kid
    assert derived_secret(SERVICE_TOKEN)  # the agents' key root is unrelated to credentials
