"""The VMS's settings; its own are read with the VMS_ prefix (e.g. VMS_GROUP_COMMIT_WINDOW_MS)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from fastapi import Depends
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.deps import from_app_state
from shared.settings import ServiceSettings


class VmsSettings(ServiceSettings):
    """Ingest, storage, query and notification settings of the VMS."""

    model_config = SettingsConfigDict(env_prefix="VMS_", extra="ignore", populate_by_name=True)

    service_name: str = "vms"
    default_port: ClassVar[int] = 6432
    # Not VMS_PORT: in the field's ConfigMap that names the VMS's address for the edge programs,
    # and copying that ConfigMap must not move the VMS.
    port: int = Field(
        0,
        validation_alias=AliasChoices("VMS_LISTEN_PORT"),
        description="port to listen on (0: 6432); VMS_PORT names the edges' VMS address (field)",
    )

    # Ingest and authentication.
    allow_anonymous: bool = Field(
        False,
        description="accept field devices without a token on the field's routes (/usage, "
        "/save_edgeData); their records are flagged unauthenticated, and a `username` that is an "
        "edge's device_login in setup lands under that edge's nid",
    )
    unknown_nodes: Literal["reject", "flag"] = "reject"
    # Fleet default zone of the field's date/time (yyyymmdd hhmmss) strings (the field's devices
    # run Korean time); an edge's own time_zone in setup overrides it.
    field_timezone: str = "Asia/Seoul"
    max_future_s: int = 300  # a record stamped further ahead than this is refused
    batch_max_records: int = 10_000
    batch_max_body_bytes: int = 16 * 1024 * 1024
    detections_max_items: int = 1_000  # boxes in one per-second detections summary

    # Group commit: one writer task per process.
    group_commit_window_ms: float = 2.0
    group_commit_max_records: int = 5_000
    group_commit_parallel: int = (
        2  # batches in flight at once (pipelining, see ingest/committer.py)
    )
    queue_max_records: int = 50_000  # pending records before answering 503
    retry_after_s: int = 1
    ingest_pool_size: int = 4
    gc_young_threshold: int = Field(
        50_000,
        ge=0,
        description="once started, freeze what the start made and collect the youngest "
        "generation of objects every this many (Python's default 700; 0 leaves Python's "
        "collector as it is): see services.vms.app.tune_gc",
    )

    # Node directory and condition mapping, from setup.
    nodes_refresh_s: float = 30.0
    nodes_miss_refresh_s: float = 2.0  # at most one refresh on a miss this often
    setup_timeout_s: float = 3.0

    # Storage.
    retention_days: int = 30
    partitions_ahead_days: int = 2
    retention_interval_s: float = 3600.0

    # Node state.
    stale_after_s: float = 10.0
    ewma_alpha: float = 0.2  # weight of the newest usage sample in cpu_avg / memory_avg
    low_confidence_alpha: float = 0.1  # weight of the newest second in low_confidence_share

    # Push channel to the optimizer.
    notify_optimizer: bool = False
    notify_queue_size: int = 1_000
    notify_timeout_s: float = 2.0
    # Comma list: a detection of one of these classes sends a "detection" event (the optimizer's
    # focus); empty: none.
    event_classes: str = "person,car"
    low_confidence_share: float = (
        0.0  # > 0: a "low_confidence" event when a node's share crosses it
    )

    # Overload hand-off: a helper edge's detections for the source node.
    handoff_cache_s: float = Field(
        5.0,
        description="seconds the optimizer's 'this helper analyses that node' is trusted before "
        "it is asked again (a hand-back is enforced at most this late)",
    )
    handoff_miss_cache_s: float = Field(
        1.0,
        description="seconds a 'no hand-off' answer (or an unreachable optimizer) is kept: at most "
        "one call to the optimizer per source node this often",
    )

    # Event clips (services.vms.clips).
    clips_dir: str = Field(
        ".edge-data/clips", description="where clip files are stored (partial uploads in .partial/)"
    )
    clip_max_bytes: int = Field(64 * 1024 * 1024, description="the largest clip accepted")
    clip_chunk_max_bytes: int = Field(1024 * 1024, description="the largest upload chunk")
    clips_max_age_days: float = Field(14.0, description="clips older than this are deleted")
    clips_max_bytes_per_edge: int = Field(
        2 * 1024**3, description="an edge's clips beyond this total are deleted, oldest first"
    )
    clips_max_bytes: int = Field(
        50 * 1024**3, description="all clips beyond this total are deleted, oldest first"
    )
    clips_partial_max_age_s: float = Field(
        24 * 3600.0, description="an upload left unfinished this long is deleted"
    )

    # Queries.
    max_page_size: int = 1_000
    max_series_points: int = 10_000

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[Any, ...]:
        def environment() -> dict[str, Any]:
            # The prefixed field name (VMS_PORT) is the field's ConfigMap name for the edges' VMS
            # address, never this process's port: only VMS_LISTEN_PORT sets that.
            values = env_settings()
            values.pop("port", None)
            return values

        return init_settings, environment, dotenv_settings, file_secret_settings

    @property
    def event_class_set(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.event_classes.split(",") if c.strip())


SettingsDep = Annotated[VmsSettings, Depends(from_app_state("settings", VmsSettings))]
