"""What environment variables the code really reads: introspected from the Settings classes.

A field with a ``validation_alias`` is read under that fixed name (EDGE_DATABASE_URL ...);
any other field under the class's ``env_prefix`` + its name (SETUP_PORT ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import AliasChoices, AliasPath, BaseModel
from pydantic_settings import BaseSettings

from shared.settings import settings_class as shared_settings_class

SERVICE_NAMES = ("setup", "master", "optimizer", "vms")
# The services others call (each has its EDGE_<NAME>_URL): with the analysis service
# (compose.yaml, k8s/optional/analysis).
CALLED_SERVICE_NAMES = (*SERVICE_NAMES, "analysis")
# Every service deployed, with the web console (nothing calls it but the browser).
COMPOSE_SERVICE_NAMES = (*CALLED_SERVICE_NAMES, "console")


def settings_class(service: str) -> type[BaseSettings]:
    return shared_settings_class(f"services.{service}.settings")


def _field_env_names(prefix: str, field_name: str, field) -> set[str]:
    alias = field.validation_alias or field.alias
    if alias is None:
        return {f"{prefix}{field_name}".upper()}
    if isinstance(alias, str):
        return {alias.upper()}
    if isinstance(alias, AliasChoices):
        return {c.upper() for c in alias.choices if isinstance(c, str)}
    if isinstance(alias, AliasPath):
        return {str(alias.path[0]).upper()}
    return set()


def env_names(cls: type[BaseSettings], *, secrets_only: bool = False) -> set[str]:
    """Every environment variable name ``cls`` reads (upper case); only SecretStr fields if asked.
    Nested models (with ``env_nested_delimiter``) add PREFIX_FIELD__SUBFIELD names."""
    prefix = cls.model_config.get("env_prefix", "") or ""
    delimiter = cls.model_config.get("env_nested_delimiter")
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        if secrets_only and "SecretStr" not in str(field.annotation):
            continue
        own = _field_env_names(prefix, field_name, field)
        names |= own
        if (
            delimiter
            and isinstance(field.annotation, type)
            and issubclass(field.annotation, BaseModel)
        ):
            names |= {
                f"{name}{delimiter}{sub}".upper()
                for name in own
                for sub in field.annotation.model_fields
            }
    return names


# Prefixes of the variables the platform reads; cleared while a test builds settings from a
# deployment file's environment, so that the test machine's own variables cannot leak in.
ENV_PREFIXES = (
    "EDGE_",
    "SETUP_",
    "MASTER_",
    "OPTIMIZER_",
    "VMS_",
    "AGENT_",
    "ANALYSIS_",
    "CONSOLE_",
)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ holds exactly ``values`` among the platform's variables while the block runs."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIXES):
            del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
