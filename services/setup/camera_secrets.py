"""Camera credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The keys come from ``SETUP_SECRET_KEYS``: Fernet keys, comma-separated, newest first. The newest
encrypts; any of them decrypts, so a key can be rotated without downtime:

1. put a new key in front (``SETUP_SECRET_KEYS=new,old``) and restart setup;
2. re-encrypt the stored rows with it: ``python -m services.setup.camera_secrets reencrypt``
   (a camera URL written meanwhile is encrypted with the new key anyway);
3. drop the old key from the list.

In local mode (``EDGE_ENV=local``) a fixed development key is used when none is set; outside
it setup refuses to start without one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sys
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from services.setup.settings import SetupSettings

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


def box_for(settings: SetupSettings) -> SecretBox:
    """The box of a SetupSettings (its ``secret_keys``, required by its validation)."""
    keys = settings.secret_keys
    if keys is None:
        raise ValueError("SETUP_SECRET_KEYS must be set (Fernet keys)")
    return SecretBox(parse_keys(keys.get_secret_value()))


def box_from_environment() -> SecretBox | None:
    """For migrations and the command below: SETUP_SECRET_KEYS, or the local key in local mode."""
    value = os.environ.get("SETUP_SECRET_KEYS")
    if value:
        return SecretBox(parse_keys(value))
    if os.environ.get("EDGE_ENV") == "local":
        return SecretBox([LOCAL_SECRET_KEY])
    return None


async def reencrypt_all(database_url: str, box: SecretBox, schema: str = "setup") -> int:
    """Re-encrypt every stored camera secret with the newest key; returns the rows changed."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        f'SELECT id, rtsp_secret FROM "{schema}".edges '
                        "WHERE rtsp_secret IS NOT NULL FOR UPDATE"
                    )
                )
            ).all()
            for row in rows:
                await conn.execute(
                    text(f'UPDATE "{schema}".edges SET rtsp_secret = :s WHERE id = :id'),
                    {"s": box.rotate(row.rtsp_secret), "id": row.id},
                )
            return len(rows)
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    if argv != ["reencrypt"]:
        print("usage: python -m services.setup.camera_secrets reencrypt", file=sys.stderr)
        return 2
    from services.setup.settings import SetupSettings

    settings = SetupSettings()
    box = box_for(settings)
    count = asyncio.run(reencrypt_all(settings.database_url, box))
    print(f"re-encrypted {count} camera secrets with the newest key")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
