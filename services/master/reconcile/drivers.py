"""One runtime driver per kind (and Kubernetes namespace), created on first use, closed with the app."""
from __future__ import annotations

import importlib
import logging

from services.master.drivers.agent import AgentDriver
from services.master.drivers.base import DriverError, RuntimeDriver
from services.master.settings import MasterSettings

log = logging.getLogger("edge.master.drivers")


class DriverSet:
    def __init__(self, settings: MasterSettings):
        self.settings = settings
        self._drivers: dict[tuple[str, str], RuntimeDriver] = {}

    def get(self, runtime: str, namespace: str = "edge-ai") -> RuntimeDriver:
        key = (runtime, namespace if runtime == "kubernetes" else "")
        driver = self._drivers.get(key)
        if driver is None:
            driver = self._drivers[key] = self._create(runtime, namespace)
        return driver

    def _create(self, runtime: str, namespace: str) -> RuntimeDriver:
        s = self.settings
        if runtime == "agent":
            assert s.service_token is not None
            return AgentDriver(service_token=s.service_token.get_secret_value(), apply_timeout_s=s.agent_timeout_s)
        factory = _optional_factory(runtime)
        if factory is None:
            raise DriverError(f"the {runtime} runtime is not available on this master")
        return factory(s, namespace)

    async def aclose(self) -> None:
        for driver in self._drivers.values():
            try:
                await driver.aclose()
            except Exception:  # closing is best effort
                log.exception("closing a %s driver failed", driver.kind)
        self._drivers.clear()


def _optional_factory(runtime: str):
    """``services.master.drivers.<runtime>.from_settings(settings, namespace)`` when that driver exists."""
    try:
        module = importlib.import_module(f"services.master.drivers.{runtime}")
    except ModuleNotFoundError:
        return None
    return getattr(module, "from_settings", None)
