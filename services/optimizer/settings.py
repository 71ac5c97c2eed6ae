"""The optimizer's settings; its own are read with the OPTIMIZER_ prefix (e.g.
OPTIMIZER_RESYNC_SECONDS).

Policy tunables are nested: OPTIMIZER_ENVIRONMENT__HYSTERESIS_SAMPLES=5,
OPTIMIZER_OVERLOAD__ENABLED=false, OPTIMIZER_FOCUS__CLASSES='["person"]'. The API
(PATCH /policies/{name}) overrides them, persisted.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.optimizer.model.config import (
    EnvironmentConfig,
    FocusConfig,
    LowConfidenceConfig,
    OverloadConfig,
    PoliciesConfig,
    RecoveryConfig,
    VersionConfig,
)
from shared.settings import ServiceSettings


class OptimizerSettings(ServiceSettings):
    """Scheduling, leadership, sources and policy defaults of the optimizer."""

    model_config = SettingsConfigDict(
        env_prefix="OPTIMIZER_", extra="ignore", populate_by_name=True, env_nested_delimiter="__"
    )

    service_name: str = "optimizer"
    default_port: ClassVar[int] = 8003

    # When decisions run.
    resync_seconds: float = Field(30.0, gt=0, description="full-fleet decision cycle period")
    debounce_ms: float = Field(
        5.0, ge=0, description="events arriving within this window are decided together"
    )
    run_scheduler: bool = Field(
        True, description="off: no periodic cycle and no event loop (tests drive /cycle)"
    )

    # Modes (start-up defaults; the API's choice, persisted, wins).
    dry_run: bool = False
    paused: bool = False

    # Leadership: one replica acts at a time, holding a lease row renewed every lease_renew_s.
    lease_ttl_s: float = Field(15.0, gt=0)
    lease_renew_s: float = Field(5.0, gt=0)
    replica_id: str = Field("", description="name of this replica in the lease (default: host:pid)")

    # Sources.
    source_timeout_s: float = Field(
        60.0, gt=0, description="timeout of the snapshot calls to setup and the VMS"
    )
    source_format: Literal["arrow", "json"] = Field(
        "arrow",
        description="how the fleet snapshot and node states are read: Arrow IPC (compact, "
        "columnar; a source that answers JSON is read as JSON) or JSON",
    )
    analysis_url: str = Field(
        "",
        description="analysis server URL told to YOLO workers (default: EDGE_VMS_URL + /analysis)",
    )
    environment_ai_class: str = Field(
        "00", description="ai_class of environment AIs, which are never handed over"
    )

    full_refresh_every: int = Field(
        10,
        ge=0,
        description="resyncs read the fleet incrementally (?since=) into the in-memory mirror; "
        "every Nth reads it whole (0: only at start and after a refused write, 1: always whole)",
    )
    since_overlap_s: float = Field(
        5.0,
        ge=0,
        description="incremental reads ask for changes since the last answer's generated_at "
        "minus this (transactions in flight then commit with older timestamps)",
    )

    bulk_max_operations: int = Field(
        2000,
        ge=1,
        description="operations per POST /deployments/bulk (setup's body limit); "
        "a decision is never split",
    )

    # Decision log.
    outcome_timeout_s: float = Field(
        900.0, gt=0, description="a decision still without outcome after this is 'unknown'"
    )

    # Policy defaults.
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    version: VersionConfig = Field(default_factory=VersionConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    overload: OverloadConfig = Field(default_factory=OverloadConfig)
    low_confidence: LowConfidenceConfig = Field(default_factory=LowConfidenceConfig)
    focus: FocusConfig = Field(default_factory=FocusConfig)

    def policies(self) -> PoliciesConfig:
        return PoliciesConfig(
            environment=self.environment,
            version=self.version,
            recovery=self.recovery,
            overload=self.overload,
            low_confidence=self.low_confidence,
            focus=self.focus,
        )

    @property
    def effective_analysis_url(self) -> str:
        return self.edge_analysis_url() or self.vms_url.rstrip("/") + "/analysis"

    def edge_analysis_url(self) -> str | None:
        """The URL told to routed edges: ``analysis_url``, else the analysis service's POST
        /analyze when EDGE_ANALYSIS_URL is set, else None (each edge posts to its VMS's inbox,
        POST /analysis, at the VMS address it already has)."""
        if self.analysis_url:
            return self.analysis_url
        service = getattr(self, "analysis_service_url", None)
        if service and "analysis_service_url" in self.model_fields_set:
            return str(service).rstrip("/") + "/analyze"
        return None
