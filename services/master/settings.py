"""The master's settings; its own are read with the MASTER_ prefix (e.g. MASTER_REGISTRY_URL)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.master.registry.node_config import PULL_SECRET_NAME
from shared.mqtt import parse_broker_url
from shared.settings import ServiceSettings


class ClusterRuntimeSettings(BaseModel):
    """How this master reaches one cluster it serves (MASTER_CLUSTER_RUNTIME, by cluster name).
    Credentials are referenced (a kubeconfig file, the in-cluster service account, a CA file),
    never stored in setup. Unset fields take the master's own (MASTER_KUBECONFIG, ...)."""

    model_config = ConfigDict(extra="forbid")

    kubeconfig: str | None = Field(None, description="path of the cluster's kubeconfig file")
    kube_context: str | None = None
    kube_in_cluster: bool | None = None
    namespace: str | None = Field(None, description="instead of the cluster's namespace in setup")
    docker_host: str | None = None
    docker_live_dir: str | None = None
    docker_network: str | None = None
    agent_ca_file: str | None = Field(None, description="CA bundle of this cluster's https agents")
    architectures: list[str] | None = Field(
        None,
        description='the CPU architectures this cluster\'s edges run (["arm64"], ["amd64", '
        '"arm64"]); images are built for all of them (unset: MASTER_IMAGE_ARCHITECTURES)',
    )


class MasterSettings(ServiceSettings):
    """Registry, package storage, upload limits, reconcile pace and runtime access of the master."""

    model_config = SettingsConfigDict(env_prefix="MASTER_", extra="ignore", populate_by_name=True)

    service_name: str = "master"
    default_port: ClassVar[int] = 8002

    # The private registry images are pushed to. Unset: packages are stored and run by edge agents
    # from the artifact store, no image is built (the single-machine stack needs no registry).
    registry_url: str | None = Field(
        None, description="http://127.0.0.1:5000, https://reg.lan:5000 or host:port"
    )
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    registry_insecure: bool = Field(False, description="plain HTTP when registry_url has no scheme")
    registry_tls_verify: bool = True
    registry_ca_file: str | None = None
    base_image: str | None = Field(
        None,
        description="base image in the same registry (e.g. python:3.11-slim); "
        "unset: package layer only",
    )
    image_media_types: Literal["oci", "docker"] = "oci"
    image_architecture: str = Field(
        "amd64", description="the architecture images are built for when no other is named"
    )
    image_architectures: str = Field(
        "",
        description="comma-separated architectures every image is built for (amd64,arm64); "
        "with the clusters' own (MASTER_CLUSTER_RUNTIME architectures), one multi-arch image "
        "index is pushed; empty: MASTER_IMAGE_ARCHITECTURE alone",
    )

    # How a package's Dockerfile becomes an image.
    builder: Literal["auto", "layers", "buildah", "docker"] = Field(
        "auto",
        description="layers: the engine-free layer builder (refuses RUN and other steps it cannot "
        "carry out); buildah: `buildah bud` on this machine (daemonless, every instruction); "
        "docker: the Docker Engine API at MASTER_DOCKER_HOST (Docker's or podman's); auto: docker "
        "when MASTER_DOCKER_HOST is set, else layers",
    )
    build_timeout_s: float = Field(
        1800.0, gt=0, description="a build running longer is stopped and failed"
    )
    build_ca_file: str | None = Field(
        None,
        description="a CA bundle mounted read-only at /etc/ssl/certs/ca-certificates.crt into "
        "every RUN step (buildah), for package indexes behind an intercepting proxy",
    )
    buildah_path: str = Field("buildah", description="the buildah program")

    # Where packages live.
    artifact_dir: Path = Field(
        Path("./var/master/artifacts"), description="content-addressed package store"
    )
    package_dir: Path = Field(
        Path("./var/master/packages"), description="the field's package folders, one per filename"
    )

    # Upload limits (the /ai-packages body limit is max_upload_bytes; every other route keeps
    # max_body_bytes).
    max_upload_bytes: int = 512 * 1024 * 1024
    max_unpacked_bytes: int = 2 * 1024 * 1024 * 1024
    max_package_files: int = 10_000

    # Reconcile.
    reconcile_seconds: float = Field(
        30.0, gt=0, description="period of the reconcile pass (POST /reconcile runs one at once)"
    )
    reconcile_on_start: bool = True
    setup_timeout_s: float = 15.0
    agent_timeout_s: float = 120.0  # an agent fetches and unpacks the package inside a PUT
    notify_optimizer: bool = True

    # Edges behind NAT (the agent-pull runtime): update notices over MQTT, binary deltas.
    mqtt_url: str | None = Field(
        None,
        description="the MQTT broker update notices go to: mqtt://host:1883 or mqtts://host:8883 "
        "(unset: agent-pull edges get no notice and only poll)",
    )
    mqtt_username: str | None = Field(None, description="the master's broker user (writes notices)")
    mqtt_password: SecretStr | None = Field(None, description="... and its password")
    mqtt_ca_file: str | None = Field(
        None, description="CA bundle the broker is verified with (mqtts)"
    )
    mqtt_cert_file: str | None = Field(None, description="client certificate for the broker (PEM)")
    mqtt_key_file: str | None = Field(None, description="... and its private key")
    mqtt_topic_prefix: str = Field("edge", description="notices go to <prefix>/<nid>/desired")
    pull_fetches_per_s: float = Field(
        2000.0,
        gt=0,
        description="the agents a second this master plans to serve their desired set and "
        "package (about a third of what one process answered on one core in "
        "bench/updates/fanout): a notice asks each agent to spread its fetch over (pull edges / "
        "this) seconds, so a fleet-wide update arrives as a steady stream, not one burst",
    )
    pull_spread_max_s: float = Field(
        30.0, ge=0, le=3600, description="the longest such spread, whatever the fleet's size"
    )
    agent_report_s: float = Field(
        30.0,
        gt=0,
        description="how often pull agents report (they are counted connected within twice this)",
    )

    board_shared: bool = Field(
        False,
        description="several master processes serve this site (uvicorn workers, replicas): the "
        "one holding the site's lease in Postgres reconciles and publishes, every committed "
        "desired set is written to Postgres, every process serves from a copy kept fresh by "
        "LISTEN/NOTIFY, and reports reach the leader through Postgres (false: one process)",
    )
    board_lease_ttl_s: float = Field(
        3.0, gt=0, description="a dead leader's lease expires after this; another takes over"
    )
    board_lease_renew_s: float = Field(
        1.0, gt=0, description="how often the leader renews (and the others try to take) it"
    )
    board_resync_s: float = Field(
        30.0, gt=0, description="every process re-reads the whole board this often (safety net)"
    )
    replica_id: str = Field("", description="this process's name in the lease (default: host:pid)")

    @model_validator(mode="after")
    def _lease_renewed_in_time(self) -> MasterSettings:
        if self.board_lease_renew_s >= self.board_lease_ttl_s:
            raise ValueError(
                "MASTER_BOARD_LEASE_RENEW_S must be shorter than MASTER_BOARD_LEASE_TTL_S "
                "(the leader would lose its lease between renewals)"
            )
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value:
            parse_broker_url(value)  # ValueError names what is wrong, at start
        return value or None

    delta_max_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a patch larger than this share of the full artifact is not served (the agent "
        "downloads the artifact): a patch that changes most of a file saves little and is slow to "
        "apply (bench/updates: 18 min for a 94 MB one)",
    )
    delta_xor_max_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        description="the same limit for a tar-xor-zstd patch (weights fine-tuned: every float "
        "changed), which applies streaming in linear time: worth sending while it saves a fifth",
    )
    artifact_memory_bytes: int = Field(
        64 * 1024**2,
        ge=0,
        description="small package archives are held in memory up to this many bytes in all and "
        "served to edges from there, least recently served dropped first (0: every download "
        "is read from disk)",
    )
    artifact_memory_file_bytes: int = Field(
        1024**2,
        ge=0,
        description="... an archive larger than this is always streamed from disk",
    )
    delta_cache_max_bytes: int = Field(
        2 * 1024**3,
        ge=0,
        description="the patch cache (<artifact_dir>/deltas) is pruned to this many bytes, least "
        "recently served first, after every new patch",
    )
    delta_cache_max_age_s: float = Field(
        30 * 86400,
        gt=0,
        description="a cached patch not served for this long is removed (at the next new patch)",
    )

    # Runtimes other than the agent.
    docker_host: str | None = Field(
        None, description="unix:///var/run/docker.sock or tcp://127.0.0.1:2375"
    )
    docker_live_dir: str | None = Field(
        None,
        description="a directory on the Docker host (the master must write the same directory: "
        "run it on that host or share the mount) where the master writes each container's live "
        "file, bind-mounted read-only, so routing/hand-off/focus changes need no restart; unset: "
        "they travel as env and replace the container",
    )
    docker_network: str | None = Field(
        None,
        description="the network the AI containers join (Docker's network_mode: host, bridge or a "
        "network's name); unset: the engine's default (bridge)",
    )
    kubeconfig: str | None = None
    kube_context: str | None = None
    kube_in_cluster: bool = False
    image_pull_secret: str = PULL_SECRET_NAME  # the Secret `edgectl registry node-config` creates

    # Sites: which clusters this master serves, how it reaches each, and how it tells setup.
    name: str | None = Field(
        None,
        description="this master's name in setup; set: it registers itself (with MASTER_CLUSTERS) "
        "and heartbeats; unset: a single-site master that registers nothing",
    )
    public_url: str | None = Field(
        None,
        description="where setup, the other masters and this site's agents reach this master "
        "(default http://127.0.0.1:<port>)",
    )
    description: str = Field("", description="this master's description in setup")
    clusters: str = Field(
        "",
        description="comma-separated names of the clusters this master serves; empty: every "
        "cluster no registered master serves (a single-site install)",
    )
    cluster_runtime: dict[str, ClusterRuntimeSettings] = Field(
        default_factory=dict,
        description='JSON, per cluster name: {"kubeconfig", "kube_context", "kube_in_cluster", '
        '"namespace", "docker_host", "docker_live_dir", "docker_network", "agent_ca_file"} '
        "(file paths, never credentials themselves)",
    )
    heartbeat_seconds: float = Field(
        10.0, gt=0, description="period of the registration/heartbeat call to setup"
    )

    # What deployed AIs are told (edgeconfig.xml and environment).
    vms_public_url: str = Field(
        "http://127.0.0.1:6432",
        description="the VMS address written into every AI's edgeconfig.xml",
    )
    vms_path: str = Field(
        "usage",
        description="edgeconfig.xml <Path> of every AI but the environment AI (00: save_edgeData)",
    )

    @property
    def vms_host_port(self) -> tuple[str, int]:
        parts = urlsplit(
            self.vms_public_url if "://" in self.vms_public_url else f"http://{self.vms_public_url}"
        )
        return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def build_architectures(self) -> list[str]:
        """Every architecture images are built for: MASTER_IMAGE_ARCHITECTURES (or
        MASTER_IMAGE_ARCHITECTURE) and the clusters' own, sorted, without repeats."""
        named = [a.strip() for a in self.image_architectures.split(",") if a.strip()]
        archs = set(named or [self.image_architecture])
        for runtime in self.cluster_runtime.values():
            archs.update(runtime.architectures or [])
        return sorted(archs)

    @property
    def cluster_names(self) -> list[str]:
        return [c.strip() for c in self.clusters.split(",") if c.strip()]

    @property
    def own_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def builds_for_fleet(self) -> bool:
        """Whether this master is the default one (EDGE_MASTER_URL), the one that builds packages
        and restarts stalled builds; every master of a single-site install is."""
        return not self.name or self.own_url == self.master_url.rstrip("/")

    def secret_values(self) -> list[str]:
        values = super().secret_values()
        if self.registry_password is not None:
            values.append(self.registry_password.get_secret_value())
        if self.mqtt_password is not None:
            values.append(self.mqtt_password.get_secret_value())
        return values
