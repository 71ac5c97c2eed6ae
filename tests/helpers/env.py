"""Test-wide constants and the settings a service gets in tests."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.credentials import issue_service_credential
from shared.settings import settings_class
from shared.signing import KeyRing, Signer, public_text

OPERATOR_TOKEN = "test-operator-token-0123456789"
SERVICE_TOKEN = "test-service-token-0123456789"
EDGE_TOKEN_SECRET = "test-edge-token-secret-0123456789"
# A Fernet key for setup's camera credentials at rest (SETUP_SECRET_KEYS).
SETUP_SECRET_KEY = "dGVzdC1jYW1lcmEtc2VjcmV0LWtleS0wMTIzNDU2Nzg="
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
# The shared token of old deployments (EDGE_ACCEPT_SERVICE_TOKEN, scoped "legacy" grants).
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}

# Setup's signing key in tests (a fixed Ed25519 key): setup gets the PEM file
# (SETUP_SIGNING_KEY_FILES), every other service only PUBLIC_KEYS (EDGE_PUBLIC_KEYS). Tests mint
# edge tokens and service credentials with SIGNER, as setup does.
SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(b"edge-platform-test-signing-key!!"))
KEYS = KeyRing(static=[SIGNER.public])
PUBLIC_KEYS = public_text(SIGNER.public)


def _signing_key_file() -> str:
    path = Path(tempfile.gettempdir()) / f"edge-test-signing-key-{SIGNER.kid}.pem"
    if not path.exists():
        pem = SIGNER.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)  # atomic: parallel test processes write the same content
    return str(path)


SIGNING_KEY_FILE = _signing_key_file()
_CREDENTIALS: dict[str, str] = {}


def service_credential(name: str) -> str:
    """The credential setup issued to a service (setup, master, optimizer, vms, analysis)."""
    if name not in _CREDENTIALS:
        _CREDENTIALS[name] = issue_service_credential(name, SIGNER)
    return _CREDENTIALS[name]


def credentials_env() -> dict[str, str]:
    """What every service of a test gets: setup's key file (read by setup only), the public key,
    and each service's own credential (EDGE_<NAME>_TOKEN; a service sends only its own)."""
    env = {
        "SETUP_SIGNING_KEY_FILES": SIGNING_KEY_FILE,
        "EDGE_PUBLIC_KEYS": PUBLIC_KEYS,
        # The public key is given: no test service reads another's (possibly a neighbour's) setup.
        "EDGE_FETCH_PUBLIC_KEYS": "false",
    }
    env.update({f"EDGE_{name.upper()}_TOKEN": service_credential(name) for name in CREDENTIALED})
    return env


ADMIN_URL = os.environ.get("EDGE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVICES = ("setup", "master", "optimizer", "vms", "analysis")
# The services with a credential of their own (the console's: its sessions at setup, and reads).
CREDENTIALED = (*SERVICES, "console")


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
    env.update(credentials_env())
    env.update(extra)
    return env


def master_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A master process of a test: its store and packages under ``tmp_path``, reconciling only
    when asked (``POST /reconcile`` or setup's triggers), telling no optimizer."""
    return service_env(
        database_url,
        MASTER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        MASTER_PACKAGE_DIR=str(tmp_path / "pk"),
        MASTER_RECONCILE_SECONDS="3600",
        MASTER_RECONCILE_ON_START="false",
        MASTER_NOTIFY_OPTIMIZER="false",
        **extra,
    )


def console_env(database_url: str, **extra: str) -> dict[str, str]:
    """The console's process environment: its own credential, no operator token (setup checks
    the one presented at sign-in)."""
    env = service_env(database_url, **extra)
    env.pop("EDGE_OPERATOR_TOKEN")
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
        public_keys=PUBLIC_KEYS,
        fetch_public_keys=False,
        **{f"{name}_token": service_credential(name) for name in CREDENTIALED},
    )
    if service == "console":
        del values["operator_token"]  # it holds none
    if service == "setup":
        values["secret_keys"] = SETUP_SECRET_KEY
        values["signing_key_files"] = SIGNING_KEY_FILE
    values.update(overrides)
    return cls(**values)
