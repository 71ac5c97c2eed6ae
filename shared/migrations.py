"""Alembic, one migration tree per service (``<service package>/migrations``), one schema each.

``upgrade(package, url)`` is what ``edgectl migrate`` and each service's start-up call, with the
service's package path (``"services.setup"``): this module knows no service by name.
Concurrent upgrades (several replicas starting at once) are serialised by an advisory lock.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def migrations_dir(package: str) -> Path:
    """The migrations folder of a service package (``"services.vms"`` -> ``.../vms/migrations``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package}: not a package")
    return Path(next(iter(spec.submodule_search_locations))) / "migrations"


def has_migrations(package: str) -> bool:
    return (migrations_dir(package) / "env.py").is_file()


def alembic_config(package: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(package)))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(package: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(package, database_url), revision)


def downgrade(package: str, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(package, database_url), revision)


def run_env(metadata: MetaData) -> None:
    """Body of every service's migrations/env.py."""
    schema = metadata.schema
    assert schema, "service metadata must name its schema"
    url = context.config.get_main_option("sqlalchemy.url") or os.environ["EDGE_DATABASE_URL"]
    lock_id = zlib.crc32(f"edge-migrate-{schema}".encode())

    def do_run(connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
        try:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.commit()
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table_schema=schema,
                include_schemas=True,
                include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
            connection.commit()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(
            url=url, target_metadata=metadata, version_table_schema=schema, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(run_async())
