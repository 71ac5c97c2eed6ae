from __future__ import annotations

import pytest

from tests.agent.helpers import Agent, ArtifactServer, kill_leftovers


@pytest.fixture
def artifacts():
    server = ArtifactServer()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path, artifacts):
    a = Agent(tmp_path, artifacts.url).start()
    yield a
    a.close()
    kill_leftovers(a.workdir)
