"""Each policy's tunables (the models themselves: shared.contracts.policies, shared with the
console and edgectl): defaults from settings (OPTIMIZER_<POLICY>__<FIELD>), overridden through
the API.

The models are validated both ways: at start-up from the environment and on PATCH /policies/{name}.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.contracts.policies import (
    POLICY_MODELS,
    POLICY_NAMES,
    EnvironmentConfig,
    FocusConfig,
    LowConfidenceConfig,
    OverloadConfig,
    PolicyConfig,
    RecoveryConfig,
    VersionConfig,
)

__all__ = [
    "POLICY_MODELS",
    "POLICY_NAMES",
    "EnvironmentConfig",
    "FocusConfig",
    "LowConfidenceConfig",
    "OverloadConfig",
    "PoliciesConfig",
    "PolicyConfig",
    "RecoveryConfig",
    "VersionConfig",
]


class PoliciesConfig(BaseModel):
    """The effective configuration of every policy for one decision cycle."""

    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    version: VersionConfig = Field(default_factory=VersionConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    overload: OverloadConfig = Field(default_factory=OverloadConfig)
    low_confidence: LowConfidenceConfig = Field(default_factory=LowConfidenceConfig)
    focus: FocusConfig = Field(default_factory=FocusConfig)

    def merged(self, overrides: dict[str, dict[str, Any]]) -> PoliciesConfig:
        values = {}
        for name, model in POLICY_MODELS.items():
            base = getattr(self, name).model_dump()
            base.update(overrides.get(name) or {})
            values[name] = model.model_validate(base)
        return PoliciesConfig(**values)
