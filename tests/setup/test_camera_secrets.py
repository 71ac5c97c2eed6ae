"""Camera credentials: masked wherever shown (userinfo and query string, agent_url too),
encrypted at rest with a key from the settings, keys rotated without losing a URL, existing
clear rows encrypted by the migration."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from cryptography.fernet import Fernet

from services.setup.app import create_app
from services.setup.camera_secrets import reencrypt_all
from services.setup.secret_box import SecretBox
from services.setup.settings import SetupSettings
from shared import migrations
from tests.conftest import running_app
from tests.helpers.database import asyncpg_url, create_database, drop_database
from tests.helpers.env import OPERATOR, SERVICE, SETUP_SECRET_KEY, settings_for
from tests.setup.test_registry import FIELD_EDGE

CAMERA = (
    "rtsp://admin:Cam-Pass-771@127.0.0.12:554/live?user=admin&password=Query-Pass-993&channel=1"
)
AGENT = "http://agent:Agent-Pass-552@127.0.0.20:9000"
SECRETS = ("Cam-Pass-771", "Query-Pass-993", "Agent-Pass-552")


async def _edge_row(database_url: str, edge_id: int) -> str:
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        row = await conn.fetchrow("SELECT * FROM setup.edges WHERE id = $1", edge_id)
    finally:
        await conn.close()
    return json.dumps({k: str(v) for k, v in dict(row).items()})


async def test_credentials_masked_in_answers_and_encrypted_at_rest(setup_client, db):
    # An agent_url carrying credentials is refused (the master authenticates with the agent's
    # key), without echoing them.
    r = await setup_client.post(
        "/edges",
        json={**FIELD_EDGE, "nid": "0x01", "url": CAMERA, "agent_url": AGENT},
        headers=OPERATOR,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "agent_url", r.text
    assert not [s for s in SECRETS if s in r.text], r.text
    r = await setup_client.post(
        "/edges",
        json={**FIELD_EDGE, "nid": "0x01", "url": CAMERA, "agent_url": "http://127.0.0.20:9000"},
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    edge = r.json()
    assert edge["url"] == "rtsp://***:***@127.0.0.12:554/live?user=***&password=***&channel=1"
    for answer in (
        r.text,
        (await setup_client.get(f"/edges/{edge['id']}", headers=OPERATOR)).text,
        (await setup_client.get("/edges", headers=OPERATOR)).text,
    ):
        assert not [s for s in SECRETS if s in answer], answer
    # At rest: no camera credential in any column of the row.
    row = await _edge_row(db, edge["id"])
    assert "Cam-Pass-771" not in row and "Query-Pass-993" not in row
    # Services read the whole URL back.
    cam = await setup_client.get(f"/edges/{edge['id']}/camera", headers=SERVICE)
    assert cam.json()["url"] == CAMERA
    # A PATCH of the URL is masked and encrypted as well.
    r = await setup_client.patch(
        f"/edges/{edge['id']}", json={"url": "rtsp://127.0.0.13/s?pwd=P-4411"}, headers=OPERATOR
    )
    assert r.json()["url"] == "rtsp://127.0.0.13/s?pwd=***" and "P-4411" not in await _edge_row(
        db, edge["id"]
    )
    cam = await setup_client.get(f"/edges/{edge['id']}/camera", headers=SERVICE)
    assert cam.json()["url"] == "rtsp://127.0.0.13/s?pwd=P-4411"


async def test_key_rotation_new_key_first_then_reencrypt_then_old_key_dropped(db):
    old, new = SETUP_SECRET_KEY, Fernet.generate_key().decode()
    async with running_app(create_app(settings_for("setup", db, notify_master=False))) as client:
        r = await client.post(
            "/edges", json={**FIELD_EDGE, "nid": "0x02", "url": CAMERA}, headers=OPERATOR
        )
        edge_id = r.json()["id"]
    # The new key in front: the old rows still decrypt.
    async with running_app(
        create_app(settings_for("setup", db, notify_master=False, secret_keys=f"{new},{old}"))
    ) as c:
        assert (await c.get(f"/edges/{edge_id}/camera", headers=SERVICE)).json()["url"] == CAMERA
    assert await reencrypt_all(db, SecretBox([new, old])) == 1
    # The old key dropped: still readable, re-encrypted with the new one.
    async with running_app(
        create_app(settings_for("setup", db, notify_master=False, secret_keys=new))
    ) as c:
        assert (await c.get(f"/edges/{edge_id}/camera", headers=SERVICE)).json()["url"] == CAMERA


def test_outside_local_mode_setup_refuses_to_start_without_a_key(database_url):
    with pytest.raises(ValueError, match="SETUP_SECRET_KEYS"):
        settings_for("setup", database_url, secret_keys=None)
    with pytest.raises(ValueError, match="not a Fernet key"):
        settings_for("setup", database_url, secret_keys="too-short")
    local = SetupSettings(env="local", database_url=database_url)
    assert local.secret_keys is not None and SecretBox([local.secret_keys.get_secret_value()])


async def test_the_migration_encrypts_existing_clear_rows(monkeypatch):
    name = f"edgetest_mig_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        await asyncio.to_thread(migrations.upgrade, "services.setup", url, "0001")
        conn = await asyncpg.connect(asyncpg_url(url))
        try:
            cluster = await conn.fetchval(
                "INSERT INTO setup.clusters (name, runtime, "
                "namespace, description, created_at, updated_at) "
                "VALUES ('c', 'agent', 'edge', '', now(), now()) RETURNING id"
            )
            await conn.execute(
                "INSERT INTO setup.edges (name, nid, cluster_id, "
                "type, address, supports_analysis, rtsp_url, "
                "rtsp_username, rtsp_password, description, status, created_at, updated_at) VALUES "
                "('e', '0x09', $1, 1, '', false, 'rtsp://127.0.0.12/live', "
                "'admin', 'Old-Clear-Pass', '', 'active', "
                "now(), now())",
                cluster,
            )
        finally:
            await conn.close()
        monkeypatch.setenv("SETUP_SECRET_KEYS", SETUP_SECRET_KEY)
        await asyncio.to_thread(migrations.upgrade, "services.setup", url)
        conn = await asyncpg.connect(asyncpg_url(url))
        try:
            row = await conn.fetchrow("SELECT * FROM setup.edges")
        finally:
            await conn.close()
        assert "Old-Clear-Pass" not in json.dumps({k: str(v) for k, v in dict(row).items()})
        assert row["rtsp_url"] == "rtsp://***:***@127.0.0.12/live"
        async with running_app(
            create_app(settings_for("setup", url, notify_master=False))
        ) as client:
            cam = await client.get(f"/edges/{row['id']}/camera", headers=SERVICE)
            assert cam.json()["url"] == "rtsp://admin:Old-Clear-Pass@127.0.0.12/live"
        # And back: the downgrade restores the split columns from the encrypted URL.
        await asyncio.to_thread(migrations.downgrade, "services.setup", url, "0001")
        conn = await asyncpg.connect(asyncpg_url(url))
        try:
            row = await conn.fetchrow(
                "SELECT rtsp_url, rtsp_username, rtsp_password FROM setup.edges"
            )
        finally:
            await conn.close()
        assert tuple(row) == ("rtsp://127.0.0.12/live", "admin", "Old-Clear-Pass")
    finally:
        await drop_database(name)


def test_log_lines_lose_url_credentials_in_userinfo_and_query():
    from edge_common.redaction import redact

    line = f"opening {CAMERA} for agent {AGENT}"
    assert not [s for s in SECRETS if s in redact(line)], redact(line)
    assert "channel=1" in redact(line)


async def test_an_agent_url_that_does_not_parse_is_refused_without_echoing_it(setup_client):
    r = await setup_client.post(
        "/edges",
        json={**FIELD_EDGE, "nid": "0x03", "agent_url": "http://agent:Agent-Pass-552@[::1"},
        headers=OPERATOR,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "agent_url", r.text
    assert "Agent-Pass-552" not in r.text
    listed = await setup_client.get("/edges", headers=OPERATOR)
    assert listed.status_code == 200 and "Agent-Pass-552" not in listed.text
