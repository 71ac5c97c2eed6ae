"""``edgectl serve NAME`` and ``edgectl migrate``."""

from __future__ import annotations

import importlib
from enum import StrEnum

import typer

from shared.settings import settings_class


class ServiceName(StrEnum):
    setup = "setup"
    master = "master"
    optimizer = "optimizer"
    vms = "vms"
    analysis = "analysis"
    console = "console"


def service_package(name: str) -> str:
    """Where service ``name`` lives: its settings, app and migrations are under this package."""
    return f"services.{name}"


def load_settings(name: str, **overrides):
    return settings_class(f"{service_package(name)}.settings")(**overrides)


def build_app(name: str, settings):
    return importlib.import_module(f"{service_package(name)}.app").create_app(settings)


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        name: ServiceName = typer.Argument(
            ..., help="setup | master | optimizer | vms | analysis | console"
        ),
        host: str = typer.Option(
            None, help="interface to listen on (default: the service's HOST setting, 127.0.0.1)"
        ),
        port: int = typer.Option(
            None, help="port (default: the service's PORT setting, else its own default port)"
        ),
        workers: int = typer.Option(
            1, min=1, help="uvicorn worker processes (each builds the app from the environment)"
        ),
    ) -> None:
        """Run one service under uvicorn."""
        import os

        import uvicorn

        overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        try:
            settings = load_settings(name.value, **overrides)
        except ValueError as exc:
            from edgectl.errors import one_line

            typer.echo(f"edgectl: cannot start {name.value}: {one_line(exc)}", err=True)
            raise typer.Exit(2) from exc
        tls = {
            "ssl_certfile": settings.tls_cert_file,
            "ssl_keyfile": settings.tls_key_file,
            "forwarded_allow_ips": settings.forwarded_allow_ips,
        }
        if workers == 1:
            uvicorn.run(
                build_app(name.value, settings),
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                **tls,
            )
            return
        # Several workers: each process builds its own app from the environment (migrations run
        # once here first, so the workers do not race on them).
        if settings.migrate_on_start:
            from shared import migrations

            migrations.upgrade(settings.service_package, settings.database_url)
        os.environ["EDGE_MIGRATE_ON_START"] = "false"
        uvicorn.run(
            f"{service_package(name.value)}.app:create_app",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            **tls,
        )

    @app.command()
    def migrate(
        names: list[ServiceName] = typer.Argument(None, help="services to migrate (default: all)"),
        database_url: str = typer.Option(
            None, envvar="EDGE_DATABASE_URL", help="postgresql+asyncpg://..."
        ),
    ) -> None:
        """Apply every service's Alembic migrations up to head."""
        from shared import migrations
        from shared.settings import ServiceSettings

        url = database_url or ServiceSettings.model_fields["database_url"].default
        for name in names or list(ServiceName):
            package = service_package(name.value)
            if not migrations.has_migrations(package):
                continue
            migrations.upgrade(package, url)
            typer.echo(f"{name.value}: migrated to head")
