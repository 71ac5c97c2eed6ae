"""The rotation of the camera credentials' key (``SETUP_SECRET_KEYS``; the box:
``services.setup.secret_box``):

1. put a new key in front (``SETUP_SECRET_KEYS=new,old``) and restart setup;
2. re-encrypt the stored rows with it: ``python -m services.setup.camera_secrets reencrypt``
   (a camera URL written meanwhile is encrypted with the new key anyway);
3. drop the old key from the list.
"""

from __future__ import annotations

import asyncio
import sys

from services.setup.secret_box import SecretBox
from services.setup.settings import SetupSettings


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
    settings = SetupSettings()
    box = settings.secret_box()
    count = asyncio.run(reencrypt_all(settings.database_url, box))
    print(f"re-encrypted {count} camera secrets with the newest key")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
