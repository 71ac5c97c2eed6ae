"""Camera credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The keys come from ``SETUP_SECRET_KEYS``: Fernet keys, comma-separated, newest first. The newest
encrypts; any of them decrypts, so a key can be rotated without downtime (the rotation command:
``services.setup.camera_secrets``). In local mode (``EDGE_ENV=local``) a fixed development key is
used when none is set; outside it setup refuses to start without one.

Below ``settings`` (which checks the keys with ``parse_keys`` and builds the box:
``SetupSettings.secret_box``) and the rotation command.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Development only: derived from a fixed phrase, so local data survives restarts.
LOCAL_SECRET_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"edge-local-camera-secrets").digest()
).decode()


def parse_keys(value: str) -> list[str]:
    """``key1,key2`` -> the keys, each checked to be a Fernet key; ValueError naming the bad one."""
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        raise ValueError("SETUP_SECRET_KEYS holds no key")
    for i, key in enumerate(keys):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ValueError(
                f"SETUP_SECRET_KEYS key {i + 1} is not a Fernet key (32 url-safe base64 bytes; "
                "make one with python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from None
    return keys


class SecretBox:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: list[str]):
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise RuntimeError(
                "a stored camera secret cannot be decrypted with any key in SETUP_SECRET_KEYS "
                "(was a key dropped before the rows were re-encrypted?)"
            ) from None

    def rotate(self, token: str) -> str:
        """The same secret encrypted with the newest key."""
        return self._fernet.rotate(token.encode()).decode()


def box_from_environment() -> SecretBox | None:
    """For migrations and the command below: SETUP_SECRET_KEYS, or the local key in local mode."""
    value = os.environ.get("SETUP_SECRET_KEYS")
    if value:
        return SecretBox(parse_keys(value))
    if os.environ.get("EDGE_ENV") == "local":
        return SecretBox([LOCAL_SECRET_KEY])
    return None
