from __future__ import annotations

import shutil

import pytest

from tests.updates.broker import MOSQUITTO, Broker


@pytest.fixture
def broker(tmp_path):
    if not shutil.which(MOSQUITTO) and not __import__("os").path.exists(MOSQUITTO):
        pytest.fail("mosquitto is not installed (scripts/test.sh installs it)")
    b = Broker(tmp_path).start()
    yield b
    b.stop()
