"""Each policy's tunables: defaults from settings (OPTIMIZER_<POLICY>__<FIELD>), overridden through
the API.

The models are validated both ways: at start-up from the environment and on PATCH /policies/{name}.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edge_common.vocabulary import Param


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class EnvironmentConfig(PolicyConfig):
    """Swap an AI for the variant made for the edge's condition."""

    hysteresis_samples: int = Field(
        3, ge=1, description="consecutive samples the condition must hold"
    )


class VersionConfig(PolicyConfig):
    """Roll newer ready versions out in waves; halt and roll back on failures."""

    first_wave: int = Field(1, ge=1, description="edges in the first wave")
    growth: float = Field(2.0, ge=1.0, description="each wave is this many times the previous one")
    failure_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="share of a wave failing that halts the rollout"
    )
    wave_timeout_s: float = Field(
        600.0, gt=0, description="a wave member still pending after this counts as failed"
    )
    crash_restarts: int = Field(
        3, ge=1, description="restarts at the new generation that count as a crash loop"
    )


class RecoveryConfig(PolicyConfig):
    """Redeploy AIs that do not run; mark the edge degraded after K failed redeploys."""

    max_redeploys: int = Field(
        3, ge=1, description="K: redeploys before the edge is marked degraded"
    )
    retry_after_s: float = Field(
        30.0, ge=0, description="wait between two redeploys of the same edge"
    )
    silent_after_s: float = Field(
        60.0, gt=0, description="an edge not heard of for this long counts as down"
    )
    crash_restarts: int = Field(
        3, ge=1, description="restarts since the last redeploy that count as a crash loop"
    )


class OverloadConfig(PolicyConfig):
    """Move an overloaded or degraded edge's analysis to the nearest edge with room, else the
    server."""

    cpu_percent: float = Field(85.0, gt=0, le=100)
    memory_percent: float = Field(90.0, gt=0, le=100)
    window_s: float = Field(
        30.0, ge=0, description="the load must stay above the thresholds this long"
    )
    recover_window_s: float = Field(
        60.0, ge=0, description="the load must stay below them this long to hand back"
    )
    helper_cpu_max: float = Field(
        60.0, gt=0, le=100, description="a helper's smoothed cpu must be below this"
    )
    helper_memory_max: float = Field(70.0, gt=0, le=100)
    max_distance_km: float = Field(
        50.0, gt=0, description="helpers further away than this are not considered"
    )
    max_helped_per_edge: int = Field(1, ge=1, description="overloaded edges one helper takes on")
    forecast_s: float = Field(
        30.0,
        ge=0,
        description="also act on the load forecast this far ahead (Holt's linear trend over the "
        "smoothed samples), so the helper is in place before the edge saturates; 0: off",
    )
    forecast_alpha: float = Field(0.5, gt=0, le=1, description="the forecast's level smoothing")
    forecast_beta: float = Field(0.3, gt=0, le=1, description="the forecast's trend smoothing")
    forecast_min_samples: int = Field(
        4, ge=2, description="samples a trend needs before its forecast counts"
    )
    forecast_watch: float = Field(
        0.6,
        gt=0,
        le=1,
        description="an edge's trend is followed once its load reaches this share of a threshold",
    )


class LowConfidenceConfig(PolicyConfig):
    """Route hard frames to the analysis server when too many results fall below the threshold."""

    confidence_threshold: float = Field(
        0.5, gt=0, lt=1, description="what a YOLO worker counts as low (told via /routing)"
    )
    share_level: float = Field(
        0.3, gt=0, le=1, description="route up when the low-confidence share is at least this"
    )
    clear_level: float = Field(0.2, ge=0, le=1, description="route back when it is below this")
    refused_hold_s: float = Field(
        60.0,
        ge=0,
        description="an edge whose uploads the analysis service refused (429, 5xx, unreachable: "
        "the worker's analysis_unavailable) is routed back and not up again for this long",
    )
    window_s: float = Field(
        10.0, ge=0, description="the share must hold above/below the levels this long"
    )


class FocusConfig(PolicyConfig):
    """A detection of a configured class raises the neighbours within a radius to focus mode for
    a TTL."""

    classes: list[str] = Field(
        default_factory=lambda: ["person", "car"],
        description="detected classes that raise focus (the VMS's VMS_EVENT_CLASSES sends them)",
    )
    radius_km: float = Field(1.0, gt=0)
    ttl_s: float = Field(300.0, gt=0)
    params: dict[str, Any] = Field(
        default_factory=lambda: {Param.FOCUS: True},
        description="merged into the neighbours' AI params, live (no restart): focus_rate, "
        "focus_conf, focus_max_uploads override the YOLO worker's focus profile",
    )


POLICY_MODELS: dict[str, type[PolicyConfig]] = {
    "environment": EnvironmentConfig,
    "version": VersionConfig,
    "recovery": RecoveryConfig,
    "overload": OverloadConfig,
    "low_confidence": LowConfidenceConfig,
    "focus": FocusConfig,
}
POLICY_NAMES = tuple(POLICY_MODELS)


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
