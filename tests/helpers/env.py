"""Test-wide constants and the settings a service gets in tests."""

from __future__ import annotations

import os
import socket

from shared.settings import settings_class

OPERATOR_TOKEN = "test-operator-token-0123456789"
SERVICE_TOKEN = "test-service-token-0123456789"
EDGE_TOKEN_SECRET = "test-edge-token-secret-0123456789"
# A Fernet key for setup's camera credentials at rest (SETUP_SECRET_KEYS).
SETUP_SECRET_KEY = "dGVzdC1jYW1lcmEtc2VjcmV0LWtleS0wMTIzNDU2Nzg="
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


def service_credential(name: str) -> str:
    """The credential a service (setup, master, optimizer, vms) sends, as derived in tests."""
    return settings_class("services.vms.settings")(
        env="production",
        operator_token=OPERATOR_TOKEN,
        service_token=SERVICE_TOKEN,
        edge_token_secret=EDGE_TOKEN_SECRET,
    ).service_credentials()[name]


ADMIN_URL = os.environ.get("EDGE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVICES = ("setup", "master", "optimizer", "vms", "analysis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a service or edge program started as a real process in a test."""
    env = dict(os.environ)
    env.update(
        EDGE_ENV="production",
        EDGE_DATABASE_URL=database_url,
        EDGE_OPERATOR_TOKEN=OPERATOR_TOKEN,
        EDGE_SERVICE_TOKEN=SERVICE_TOKEN,
        EDGE_EDGE_TOKEN_SECRET=EDGE_TOKEN_SECRET,
        SETUP_SECRET_KEYS=SETUP_SECRET_KEY,
        # The shared service token, scoped (shared.auth.SERVICE_GRANTS["legacy"]): older tests use
        # it.
        EDGE_ACCEPT_SERVICE_TOKEN="true",
        EDGE_LOG_FORMAT="text",
        YOLO_OFFLINE="1",
    )
    env.update(extra)
    return env


def settings_for(service: str, database_url: str, **overrides):
    """The service's Settings object as a test builds its in-process app."""
    cls = settings_class(f"services.{service}.settings")
    values = dict(
        env="production",
        database_url=database_url,
        operator_token=OPERATOR_TOKEN,
        service_token=SERVICE_TOKEN,
        edge_token_secret=EDGE_TOKEN_SECRET,
        accept_service_token=True,
        migrate_on_start=False,
        log_format="text",
    )
    if service == "setup":
        values["secret_keys"] = SETUP_SECRET_KEY
    values.update(overrides)
    return cls(**values)
