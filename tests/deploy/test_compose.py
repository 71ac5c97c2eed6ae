"""compose.yaml: valid against the Compose Specification's JSON schema, and consistent with the
code (commands, ports, health checks, environment variable names and values, secrets).

There is no Docker engine here, so the file is checked, not run.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import urllib.parse
from functools import cache

import jsonschema
import pytest

from shared.settings import ServiceSettings
from tests.deploy import compose_file as cf
from tests.deploy.settings_env import CALLED_SERVICE_NAMES, env_names, environment, settings_class
from tests.deploy.settings_env import COMPOSE_SERVICE_NAMES as SERVICE_NAMES

# Roots no shared file may hold (each service's own credential is in its own file).
ROOTS = ("EDGE_OPERATOR_TOKEN", "EDGE_SERVICE_TOKEN", "EDGE_EDGE_TOKEN_SECRET")
SECRETS = ("POSTGRES_PASSWORD", "MASTER_MQTT_PASSWORD", "SETUP_SECRET_KEYS")
EDGES = ("edge-01", "edge-02")
# In .env for the infrastructure containers only (compose interpolates them), not settings.
INFRA_ONLY = ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


@cache
def compose_schema() -> dict:
    # The official compose-spec schema, as vendored (from the compose-spec repository) by the
    # check-jsonschema package.
    ref = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
    return json.loads(ref.read_text())


def schema_errors(doc: dict) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(
        schema, format_checker=jsonschema.FormatChecker()
    )
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.fixture(scope="module")
def compose() -> dict:
    return cf.load()


def services_running(compose: dict, verb: str, *, profile: str | None = None) -> dict[str, dict]:
    """The services running ``edgectl <verb>``: of the default stack, or of one profile."""
    return {
        name: s
        for name, s in compose["services"].items()
        if (s.get("command") or [None])[0] == verb
        and (profile in s.get("profiles", []) if profile else "site2" not in s.get("profiles", []))
    }


def serve_services(compose: dict) -> dict[str, tuple[str, dict]]:
    """compose service name -> (platform service it serves, definition)."""
    return {name: (s["command"][1], s) for name, s in services_running(compose, "serve").items()}


def platform_services(compose: dict) -> dict[str, dict]:
    """Everything that runs the repository's image: services, migrations and agents."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def server_side(compose: dict) -> dict[str, dict]:
    """The four services and the migrations (the agents are edge boxes)."""
    return {name: s for name, s in platform_services(compose).items() if s["command"][0] != "agent"}


# --- the file itself ---------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec_schema():
    assert schema_errors(cf.load_raw()) == []
    assert schema_errors(cf.load()) == []


def test_the_schema_check_rejects_a_broken_file():
    broken = copy.deepcopy(cf.load())
    broken["services"]["setup"]["helthcheck"] = broken["services"]["setup"].pop("healthcheck")
    broken["services"]["vms"]["restart"] = ["always"]
    errors = schema_errors(broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any("$.services.vms.restart" in e for e in errors), errors


def test_every_variable_compose_interpolates_is_in_env_example():
    """Set there, or shown commented out (#NAME=...) where compose has a default."""
    used = cf.variables_used(cf.COMPOSE.read_text())
    assert "POSTGRES_PASSWORD" in used, (
        "compose.yaml builds the database URL from POSTGRES_PASSWORD"
    )
    text = cf.ENV_EXAMPLE.read_text()
    documented = set(cf.read_env_file()) | set(
        re.findall(r"^#([A-Z][A-Z0-9_]*)=", text, flags=re.M)
    )
    assert used <= documented, used - documented
    required = set(re.findall(r"\$\{([A-Z0-9_]+):?\?", cf.COMPOSE.read_text()))
    assert required <= set(cf.read_env_file()), "a required variable must be set in the example"


def test_a_missing_database_password_is_an_error_not_an_empty_password():
    env = {k: v for k, v in cf.read_env_file().items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        cf.load(env)


def test_files_mounted_from_the_repository_exist():
    for name, service in cf.load()["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("./"):
                assert (cf.REPO / source).exists(), (
                    f"{name} mounts {source}, which is not in the repository"
                )


# --- the stack's shape ------------------------------------------------------------------


def test_the_whole_stack_is_there(compose):
    services = compose["services"]
    for infra in ("postgres", "mosquitto", "redis", "registry", "migrate"):
        assert infra in services
    assert services["registry"]["image"].startswith("registry:2")
    assert {svc for svc, _ in serve_services(compose).values()} == set(SERVICE_NAMES)
    assert {name for name, s in services_running(compose, "agent").items()} == set(EDGES)


def test_every_long_running_container_has_a_health_check_and_a_restart_policy(compose):
    for name, service in compose["services"].items():
        if name in ("migrate", "migrate-site2", "mosquitto-users"):  # one-shot jobs
            assert service["restart"] == "no", "a one-shot job must not be restarted"
            continue
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_registry_allows_deleting_images():
    import yaml

    config = yaml.safe_load((cf.REPO / "deploy/registry/config.yml").read_text())
    assert config["storage"]["delete"]["enabled"] is True
    compose = cf.load()
    port = int(config["http"]["debug"]["addr"].rsplit(":", 1)[1])
    assert f"127.0.0.1:{port}/debug/health" in " ".join(
        compose["services"]["registry"]["healthcheck"]["test"]
    )


def test_platform_images_are_built_from_the_repository_dockerfile(compose):
    dockerfile = (cf.REPO / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, flags=re.M | re.I))
    assert re.search(r'^ENTRYPOINT \["edgectl"\]', dockerfile, flags=re.M)
    for name, service in platform_services(compose).items():
        build = service["build"]
        assert build["context"] == "."
        assert (cf.REPO / build.get("dockerfile", "Dockerfile")).is_file()
        assert build.get("target", "base") in stages, name


def test_dockerignore_keeps_what_pip_install_needs():
    ignored = {
        line.strip()
        for line in (cf.REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("pyproject.toml", "README.md", "shared", "services", "edge_ai", "edgectl"):
        assert needed not in ignored
    for secret in (".env", ".git", ".venv"):
        assert secret in ignored


# --- migrations before services --------------------------------------------------------


def test_migrations_run_once_before_every_service(compose):
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["services"]["postgres"]["healthcheck"]["test"]
    for name, (_, service) in serve_services(compose).items():
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", (
            name
        )
        # The job has migrated: replicas restarting must not race on it.
        assert cf.environment_of(service)["EDGE_MIGRATE_ON_START"] == "false"


def test_edge_agents_start_after_the_master_is_healthy(compose):
    for name in EDGES:
        assert compose["services"][name]["depends_on"]["master"]["condition"] == "service_healthy"


# --- commands, ports and health checks agree --------------------------------------------


@pytest.mark.parametrize("service_name", SERVICE_NAMES)
def test_service_listens_where_it_is_published_and_probed(compose, service_name):
    [(_name, service)] = [
        (n, s) for n, (svc, s) in serve_services(compose).items() if svc == service_name
    ]
    command = service["command"]
    assert command[:2] == ["serve", service_name]
    assert cf.option(command, "--host") == "0.0.0.0", (
        "inside a container the service must listen on all interfaces"
    )
    port = int(cf.option(command, "--port"))
    assert port == settings_class(service_name).default_port
    assert [target for _, target in cf.published_ports(service)] == [port]
    probe = " ".join(service["healthcheck"]["test"])
    assert re.search(rf"http://127\.0\.0\.1:{port}/readyz\b", probe), probe
    # A 503 from /readyz must fail the check: urlopen raises on it, so the exit code is 1.
    assert service["healthcheck"]["test"][:3] == ["CMD", "python", "-c"]


def test_edge_agents_are_configured_to_reach_the_master(compose):
    master_port = next(
        int(cf.option(s["command"], "--port"))
        for svc, s in serve_services(compose).values()
        if svc == "master"
    )
    ports = set()
    for name in EDGES:
        command = compose["services"][name]["command"]
        assert cf.option(command, "--node") == name
        assert cf.option(command, "--host") == "0.0.0.0", (
            "the master must be able to reach the agent"
        )
        probe = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{cf.option(command, '--port')}/healthz" in probe
        assert cf.option(command, "--master-url") == f"http://master:{master_port}"
        assert cf.option(command, "--workdir")
        ports.add(cf.option(command, "--port"))
    assert len(ports) == len(EDGES)


def test_urls_between_services_point_at_the_compose_services(compose):
    by_service = {
        svc: (name, int(cf.option(s["command"], "--port")))
        for name, (svc, s) in serve_services(compose).items()
        if svc in CALLED_SERVICE_NAMES  # the console is called by browsers only
    }
    for name, service in server_side(compose).items():
        env = cf.environment_of(service)
        for svc, (host, port) in by_service.items():
            assert env[f"EDGE_{svc.upper()}_URL"] == f"http://{host}:{port}", (name, svc)
        db = urllib.parse.urlsplit(env["EDGE_DATABASE_URL"])
        # Site 2's master keeps its own database, at its site.
        postgres = "postgres-site2" if "site2" in service.get("profiles", []) else "postgres"
        assert db.scheme == "postgresql+asyncpg" and db.hostname == postgres and db.port == 5432, (
            name
        )
        assert db.path == "/" + compose["services"][postgres]["environment"]["POSTGRES_DB"]
        assert db.password == cf.read_env_file()["POSTGRES_PASSWORD"]


# --- environment matches the settings ----------------------------------------------------


def settings_for_service(command: list[str]) -> type:
    if command[0] == "serve":
        return settings_class(command[1])
    return ServiceSettings  # migrate and the agent read the shared EDGE_* settings


@pytest.mark.parametrize("service_name", SERVICE_NAMES)
def test_every_variable_set_is_a_real_setting_of_the_service(compose, service_name):
    [service] = [s for svc, s in serve_services(compose).values() if svc == service_name]
    cls = settings_class(service_name)
    known = env_names(cls)
    set_here = set(cf.environment_of(service)) | set(cf.read_env_file())
    unknown = {
        k
        for k in set_here
        if k not in known and k not in INFRA_ONLY and not _other_service(k, service_name)
    }
    assert not unknown, f"{service_name}: not settings of {cls.__name__}: {sorted(unknown)}"


def _other_service(key: str, service_name: str) -> bool:
    """A prefixed setting of another service (e.g. MASTER_REGISTRY_* in the shared .env)."""
    if re.fullmatch(r"EDGE_0[0-9]_(AGENT_KEY|TOKEN)", key):
        return True  # interpolated into the simulated edges' own environment only
    prefix = key.split("_", 1)[0].lower()
    if prefix in SERVICE_NAMES and prefix != service_name:
        assert key in env_names(settings_class(prefix)), f"{key} is no setting of {prefix}"
        return True
    return False


def test_migrate_sets_only_shared_settings(compose):
    known = env_names(ServiceSettings)
    env = cf.environment_of(compose["services"]["migrate"])
    assert set(env) <= known, set(env) - known


def agent_settings_class() -> type:
    from edge_ai.agent.settings import AgentSettings

    return AgentSettings


@pytest.mark.parametrize("edge", EDGES)
def test_agent_environment_is_real_agent_settings_that_load(compose, edge):
    service = compose["services"][edge]
    cls = agent_settings_class()
    env = cf.environment_of(service)
    assert set(env) <= env_names(cls), set(env) - env_names(cls)
    command = service["command"]
    with environment(env):
        settings = cls(
            node=cf.option(command, "--node"),
            host=cf.option(command, "--host"),
            port=int(cf.option(command, "--port")),
            workdir=cf.option(command, "--workdir"),
            master_url=cf.option(command, "--master-url"),
        )
    assert settings.env == "production"
    assert settings.key.get_secret_value() == cf.read_env_file()[f"EDGE_{edge[-2:]}_AGENT_KEY"]
    assert not hasattr(settings, "service_token")  # an edge holds no service credential


def test_agent_command_line_takes_the_options_compose_passes(compose):
    from typer.testing import CliRunner

    from edgectl.main import app

    result = CliRunner().invoke(app, ["agent", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for edge in EDGES:
        for arg in compose["services"][edge]["command"][1:]:
            if arg.startswith("--"):
                assert arg in result.output, f"edgectl agent has no {arg}"


@pytest.mark.parametrize("service_name", SERVICE_NAMES)
def test_service_settings_load_from_the_compose_environment(compose, service_name, tmp_path):
    """What the container would see (.env + its own credential file, made by `edgectl
    credentials bundle`, + environment:) builds the service's Settings in production mode: values
    parse, the secrets check passes, the port is the one published; the operator's token is
    checked by its hash, held by no service (the console neither holds nor checks it); setup
    alone has the signing key."""
    from edgectl.credentials_cmd import write_bundle

    [service] = [s for svc, s in serve_services(compose).values() if svc == service_name]
    shared = write_bundle(tmp_path)
    example = cf.read_env_file()
    example["EDGE_OPERATOR_TOKEN_SHA256"] = shared["EDGE_OPERATOR_TOKEN_SHA256"]
    own = cf.read_env_file(tmp_path / f"{service_name}.env")
    env = {**example, **own, **cf.environment_of(service)}
    env.pop("POSTGRES_PASSWORD")
    if service_name == "setup":
        assert env["SETUP_SIGNING_KEY_FILES"] == "/run/secrets/setup-signing-key"
        assert service["secrets"] == ["setup-signing-key"]
        env["SETUP_SIGNING_KEY_FILES"] = str(tmp_path / "setup-signing.pem")
    else:
        assert "secrets" not in service
    with environment(env):
        settings = settings_class(service_name)(port=int(cf.option(service["command"], "--port")))
    assert settings.env == "production"
    assert settings.migrate_on_start is False
    assert "EDGE_OPERATOR_TOKEN" not in env and settings.operator_token is None
    if service_name == "console":
        assert settings.operator_digest() is None
    else:
        assert settings.operator_digest() == shared["EDGE_OPERATOR_TOKEN_SHA256"]
    assert (settings.signer() is not None) == (service_name == "setup")
    assert settings.own_credential().startswith(f"svc_{service_name}.")
    assert settings.port == settings_class(service_name).default_port


def test_the_bundle_gives_the_operator_token_to_no_service(tmp_path):
    """`edgectl credentials bundle`: the operator's token in operator.env only; a bundle of
    before (its console.env held the token) is split, the token kept."""
    import hashlib

    from edgectl.credentials_cmd import BUNDLE_SERVICES, write_bundle

    old = "operator-token-of-an-older-bundle-0123"
    (tmp_path / "console.env").write_text(f"EDGE_OPERATOR_TOKEN={old}\n")
    shared = write_bundle(tmp_path)
    assert cf.read_env_file(tmp_path / "operator.env") == {"EDGE_OPERATOR_TOKEN": old}
    assert shared["EDGE_OPERATOR_TOKEN_SHA256"] == hashlib.sha256(old.encode()).hexdigest()
    for name in BUNDLE_SERVICES:
        values = cf.read_env_file(tmp_path / f"{name}.env")
        assert old not in values.values() and "EDGE_OPERATOR_TOKEN" not in values, name
        assert values[f"EDGE_{name.upper()}_TOKEN"].startswith(f"svc_{name}."), name
    assert write_bundle(tmp_path) == shared  # a second run keeps everything


# --- secrets -------------------------------------------------------------------------------


def test_secrets_come_from_the_uncommitted_env_file(compose):
    gitignore = (cf.REPO / ".gitignore").read_text().split()
    assert ".env" in gitignore, ".env must never be committed"
    assert "deploy/credentials/" in gitignore, "the credential bundle must never be committed"
    example = cf.read_env_file()
    for secret in SECRETS:
        assert len(example[secret]) >= 16, "the example must pass the services' own length check"
        assert "EXAMPLE" in example[secret], "example values must say they are examples"
    assert not {k for k in example if k in ROOTS or re.fullmatch(r"EDGE_[A-Z]+_TOKEN", k)}
    for name, service in server_side(compose).items():
        files = cf.env_files_of(service)
        assert (".env", True) in files, f"{name} must read .env"
        # Its own credential file, and no other service's.
        own = [f for f, _ in files if f.startswith("deploy/credentials/")]
        if service["command"][0] == "serve":
            assert own == [f"deploy/credentials/{service['command'][1]}.env"], (name, own)
        else:
            assert own == [], name
        env = cf.environment_of(service)
        for secret in (*SECRETS, *ROOTS):
            assert secret not in env, (
                f"{name} sets {secret} in compose.yaml; secrets belong in .env"
            )
        assert not {k for k in env if re.search(r"PASSWORD|TOKEN|SECRET", k)}, name
    # The database password is interpolated, never written in the file.
    raw = cf.COMPOSE.read_text()
    assert example["POSTGRES_PASSWORD"] not in raw


def test_infrastructure_containers_do_not_get_the_platform_secrets(compose):
    for name in ("postgres", "mosquitto", "redis", "registry"):
        assert (".env", True) not in cf.env_files_of(compose["services"][name]), name


def test_edges_hold_only_their_own_key_and_token(compose):
    """An edge box must not hold a service credential, the operator token, the edge-token signing
    secret or the database URL; its own agent key comes from .env by interpolation."""
    raw = cf.load_raw()
    for edge in EDGES:
        service = compose["services"][edge]
        assert not cf.env_files_of(service), f"{edge} must not read the whole .env"
        env = cf.environment_of(service)
        assert not {
            "EDGE_OPERATOR_TOKEN",
            "EDGE_SERVICE_TOKEN",
            "EDGE_EDGE_TOKEN_SECRET",
            "EDGE_DATABASE_URL",
        } & set(env)
        assert raw["services"][edge]["environment"]["AGENT_KEY"].startswith("${EDGE_")


def test_master_keeps_its_packages_on_a_volume(compose):
    service = compose["services"]["master"]
    env = {**cf.read_env_file(), **cf.environment_of(service)}
    with environment(env):
        settings = settings_class("master")()
    targets = [v.split(":")[1] for v in service["volumes"]]
    for path in (settings.artifact_dir, settings.package_dir):
        assert any(str(path).startswith(t.rstrip("/") + "/") for t in targets), path
    assert settings.registry_url == "registry:5000" and settings.registry_insecure
    assert settings.vms_public_url == cf.environment_of(service)["EDGE_VMS_URL"]


def test_the_site2_profile_is_a_second_site_with_its_own_master_registry_and_edge(compose):
    """`docker compose --profile site2 up -d`: one more master (its own database, registry and
    name), registering with the central setup for its cluster, and an agent that fetches from it."""
    site = {n: s for n, s in compose["services"].items() if "site2" in s.get("profiles", [])}
    assert set(site) == {
        "postgres-site2",
        "migrate-site2",
        "registry-site2",
        "master-site2",
        "edge-03",
    }
    env = cf.environment_of(site["master-site2"])
    assert env["MASTER_NAME"] == "site-2" and env["MASTER_CLUSTERS"] == "site-2"
    assert env["MASTER_REGISTRY_URL"] == "registry-site2:5000"
    assert env["EDGE_SETUP_URL"] == "http://setup:8001"  # the central setup
    assert env["MASTER_PUBLIC_URL"] == "http://master-site2:8012"
    assert cf.option(site["master-site2"]["command"], "--port") == "8012"
    assert cf.option(site["edge-03"]["command"], "--master-url") == "http://master-site2:8012"
    assert site["migrate-site2"]["command"] == ["migrate", "master"]


def test_podman_compose_reads_the_file(compose, tmp_path):
    """A Compose implementation reads compose.yaml as the checks above do: podman-compose (PyPI;
    Debian's 1.0.3 has no `config` and fails on the long `env_file` form) renders it with
    .env.example as .env. Bringing the stack up is not run: its images come from Docker Hub."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from tests.helpers.processes import REPO

    shutil.copy(REPO / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    tool = Path(sys.executable).parent / "podman-compose"
    out = subprocess.run(
        [str(tool), "-f", "compose.yaml", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rendered = yaml.safe_load(out.stdout)
    # Services in a profile (a second site, a GPU worker) are left out unless the profile is on.
    default = {name for name, svc in compose["services"].items() if not svc.get("profiles")}
    assert set(rendered["services"]) == default
    assert rendered["services"]["registry"]["image"] == compose["services"]["registry"]["image"]
