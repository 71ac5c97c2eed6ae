"""The optimizer's policy settings as they travel: each policy's tunables (``EnvironmentConfig``
... ``FocusConfig``: defaults from the optimizer's settings, OPTIMIZER_<POLICY>__<FIELD>), the
body that changes some of them (``PATCH /policies/{name}``: ``POLICY_PATCHES``, derived from the
policy's own model, every field optional, an unknown one refused), and the answers of
``GET /policies`` (``PolicyOut``, one model per policy) and ``GET /policies/changes``
(``PolicyChangeOut``). The optimizer, the console and ``edgectl`` use these same models."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    create_model,
    model_serializer,
)

from edge_common.vocabulary import Param
from shared.contracts.decisions import Policy


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
    Policy.ENVIRONMENT: EnvironmentConfig,
    Policy.VERSION: VersionConfig,
    Policy.RECOVERY: RecoveryConfig,
    Policy.OVERLOAD: OverloadConfig,
    Policy.LOW_CONFIDENCE: LowConfidenceConfig,
    Policy.FOCUS: FocusConfig,
}
POLICY_NAMES = tuple(POLICY_MODELS)


# --- changing a policy's settings ------------------------------------------------------------


class PolicyPatch(BaseModel):
    """Some of a policy's settings: those sent are checked as the policy's model checks them (a
    null is refused like any value of the wrong type), any other key is refused; answered and
    dumped with only the fields that were set."""

    model_config = ConfigDict(extra="forbid")

    # No return type: the answers' schema stays the model's own (it only leaves unset fields out).
    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler):
        data = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}

    def changes(self) -> dict[str, Any]:
        """The settings sent, as JSON values."""
        return dict(self.model_dump(mode="json"))


def patch_of(policy: Policy, config: type[PolicyConfig]) -> type[PolicyPatch]:
    """The change body of ``config``: its fields, checks and descriptions, none required."""
    fields: dict[str, Any] = {}
    for name, info in config.model_fields.items():
        optional = copy.copy(info)
        optional.default = None  # left out: unchanged (not validated, never dumped)
        optional.default_factory = None
        fields[name] = (info.annotation, optional)
    return create_model(
        f"{config.__name__.removesuffix('Config')}Patch",
        __base__=PolicyPatch,
        __doc__=f"Some of the {policy.value} policy's settings (those sent change).",
        __module__=__name__,
        **fields,
    )


POLICY_PATCHES: dict[Policy, type[PolicyPatch]] = {
    Policy(name): patch_of(Policy(name), config) for name, config in POLICY_MODELS.items()
}


# --- what the optimizer answers --------------------------------------------------------------


class PolicyOut(BaseModel):
    """One policy: its settings in effect, the settings' defaults and the operators' changes
    over them (``POLICY_OUTS``: one model per policy, with that policy's fields)."""

    name: Policy
    enabled: bool
    effective: PolicyConfig
    defaults: PolicyConfig
    overrides: PolicyPatch


def _out_of(policy: Policy, config: type[PolicyConfig]) -> type[PolicyOut]:
    return create_model(
        f"{config.__name__.removesuffix('Config')}PolicyOut",
        __base__=PolicyOut,
        __doc__=f"The {policy.value} policy: its settings in effect, defaults and changes.",
        __module__=__name__,
        name=(Literal[policy], ...),  # type: ignore[arg-type]
        effective=(config, ...),
        defaults=(config, ...),
        overrides=(POLICY_PATCHES[policy], Field(description="the settings changed over them")),
    )


POLICY_OUTS: dict[Policy, type[PolicyOut]] = {
    Policy(name): _out_of(Policy(name), config) for name, config in POLICY_MODELS.items()
}

if TYPE_CHECKING:
    AnyPolicyOut = PolicyOut
else:
    # Which one, by its name (for parsing an answer, and the answers' schema).
    AnyPolicyOut = Annotated[Union[tuple(POLICY_OUTS.values())], Field(discriminator="name")]  # noqa: UP007

POLICIES: TypeAdapter[list[AnyPolicyOut]] = TypeAdapter(list[AnyPolicyOut])


class PolicyChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    policy: Policy
    changed_by: str = Field(description='who, and from where: "operator (edgectl)"')
    changes: dict[str, Any] = Field(description="the settings asked for (a reset: none)")
    reset: bool = Field(description="back to the settings' defaults")


POLICY_CHANGES: TypeAdapter[list[PolicyChangeOut]] = TypeAdapter(list[PolicyChangeOut])
