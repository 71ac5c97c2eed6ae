from __future__ import annotations

import pytest

from tests.helpers.env import free_port, service_env
from tests.helpers.processes import start_service


@pytest.fixture(scope="module")
def setup_service(database_url, tmp_path_factory):
    """Setup as a real process; it does not call the master back (the tests drive the master)."""
    port = free_port()
    tmp = tmp_path_factory.mktemp("setup")
    proc = start_service(
        "setup", env=service_env(database_url, SETUP_NOTIFY_MASTER="false"), port=port, tmp_path=tmp
    )
    yield f"http://127.0.0.1:{port}"
    proc.stop()
