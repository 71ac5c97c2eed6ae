"""docs/settings.md is the configuration reference the README points to: it must match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_settings_reference_is_current():
    generated = subprocess.run(
        [sys.executable, "-m", "edgectl.main", "settings", "--markdown"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (REPO / "docs" / "settings.md").read_text() == generated, (
        "run: edgectl settings --markdown > docs/settings.md"
    )


def test_every_service_setting_is_in_the_reference():
    text = (REPO / "docs" / "settings.md").read_text()
    for name in (
        "EDGE_DATABASE_URL",
        "SETUP_NOTIFY_MASTER",
        "MASTER_REGISTRY_URL",
        "VMS_GROUP_COMMIT_WINDOW_MS",
        "AGENT_MASTER_URL",
        "EDGE_UP_DATA_DIR",
    ):
        assert f"`{name}`" in text


def test_without_the_flag_the_settings_are_listed_for_a_terminal():
    plain = subprocess.run(
        [sys.executable, "-m", "edgectl.main", "settings"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| --- |" not in plain and not plain.startswith("# Settings")
    assert "\n  SETUP_NOTIFY_MASTER=True\n" in plain
    assert "\n  EDGE_DATABASE_URL=postgresql+asyncpg://" in plain


def test_numbers_are_shown_and_secrets_are_not():
    text = (REPO / "docs" / "settings.md").read_text()
    # A token's lifetime is a number, not a secret; the tokens themselves never have a default.
    assert "| `EDGE_EDGE_TOKEN_TTL_S` | `2592000` |" in text
    assert "| `AGENT_TOKEN_CHECK_S` | `3600` |" in text
    assert "| `EDGE_OPERATOR_TOKEN` | (none) |" in text
