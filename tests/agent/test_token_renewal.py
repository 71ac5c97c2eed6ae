"""The agent renews its edge's token with the real setup before it expires, keeps it in its work
dir and restarts its workloads with the new one (issue 16 item 2: tokens expire, agents renew)."""

from __future__ import annotations

import httpx
import pytest

from shared.edge_tokens import decode_edge_token
from tests.agent.helpers import (
    Agent,
    ArtifactServer,
    kill_leftovers,
    spec,
    ticker_package,
    wait_until,
    workload_processes,
)
from tests.helpers.env import KEYS, OPERATOR, free_port, service_env
from tests.helpers.processes import start_service

TTL_S = 16  # setup's token lifetime here; the agent renews with 10 s left, checking every second


@pytest.fixture
def setup_url(db, tmp_path):
    port = free_port()
    env = service_env(db, SETUP_NOTIFY_MASTER="false", EDGE_EDGE_TOKEN_TTL_S=str(TTL_S))
    proc = start_service("setup", env=env, port=port, tmp_path=tmp_path)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def test_the_agent_renews_before_expiry_and_restarts_its_workloads_with_the_new_token(
    tmp_path, setup_url
):
    with httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=10) as c:
        r = c.post("/edges", json={"name": "renewing-edge", "nid": "0x01"})
        assert r.status_code == 201, r.text
        first = r.json()["token"]
    artifacts = ArtifactServer()
    agent = Agent(
        tmp_path,
        artifacts.url,
        extra_env={
            "AGENT_EDGE_TOKEN": first,
            "AGENT_SETUP_URL": setup_url,
            "AGENT_TOKEN_RENEW_BEFORE_S": "10",
            "AGENT_TOKEN_CHECK_S": "1",
        },
    ).start()
    try:
        digest = artifacts.add(ticker_package("01"))
        assert (
            agent.client.put(
                "/workloads/monitoring-01", json=spec("monitoring-01", digest, "01")
            ).status_code
            == 200
        )
        (proc,) = wait_until(
            lambda: workload_processes(agent.workdir, "monitoring-01"), what="the workload"
        )
        assert (
            proc.environ()["EDGE_TOKEN"] == first
        )  # the edge's own token, handed over by the agent

        token_file = agent.workdir / "edge-token"
        renewed = wait_until(
            lambda: token_file.exists() and token_file.read_text(), timeout=15, what="a renewal"
        )
        old, new = (
            decode_edge_token(first, KEYS),
            decode_edge_token(renewed, KEYS),
        )
        assert (
            new is not None
            and new.nid == "0x01"
            and new.token_id > old.token_id
            and new.expires_at > old.expires_at
        )
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        # The workload now runs with the renewed token (restarted: the old process is gone).
        wait_until(
            lambda: [
                p
                for p in workload_processes(agent.workdir, "monitoring-01")
                if p.environ().get("EDGE_TOKEN") == renewed
            ],
            timeout=15,
            what="restart with the new token",
        )
        # Setup takes the renewed token (it is the edge's, not revoked).
        assert (
            httpx.post(
                f"{setup_url}/edges/me/token",
                headers={"Authorization": f"Bearer {renewed}"},
                timeout=10,
            ).status_code
            == 200
        )
    finally:
        agent.close()
        artifacts.close()
        kill_leftovers(agent.workdir)
