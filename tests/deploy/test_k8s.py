"""k8s/: every rendered manifest is valid Kubernetes 1.30 (strict: no unknown fields), and the
manifests agree with the code and with each other (commands, probes, ports, selectors,
settings, secrets, RBAC, network policy). There is no cluster here: rendered and checked, not run.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest

from shared.settings import ServiceSettings
from tests.deploy import kustomize_render as kr
from tests.deploy.settings_env import CALLED_SERVICE_NAMES, env_names, environment, settings_class
from tests.deploy.settings_env import COMPOSE_SERVICE_NAMES as SERVICE_NAMES

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAY = K8S / "overlays" / "example"
KUSTOMIZATIONS = sorted(p.parent for p in K8S.rglob("kustomization.yaml"))
PLATFORM_IMAGE = "edge-platform"
# The same repository built with the `edge` extra (Dockerfile target edge): the analysis service.
PLATFORM_IMAGES = (PLATFORM_IMAGE, "edge-platform-edge")
PLATFORM_NS = "edge-platform"
EDGE_NS = "edge-ai"


@cache
def rendered(directory: Path = OVERLAY) -> tuple[dict, ...]:
    return tuple(kr.render(directory))


def objects(kind: str | None = None, directory: Path = OVERLAY) -> list[dict]:
    return [o for o in rendered(directory) if kind is None or o["kind"] == kind]


def one(kind: str, name: str) -> dict:
    [obj] = [o for o in objects(kind) if o["metadata"]["name"] == name]
    return obj


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def workloads() -> list[dict]:
    return [o for o in rendered() if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def is_platform(container: dict) -> bool:
    image = container["image"]
    return image.rsplit("/", 1)[-1].split(":")[0] in PLATFORM_IMAGES


def argv(container: dict) -> list[str]:
    """What the platform image runs: its ENTRYPOINT is edgectl, so args are edgectl's."""
    command = container.get("command") or []
    if command:
        assert command[0] == "edgectl", command
        return [*command[1:], *(container.get("args") or [])]
    return list(container.get("args") or [])


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def platform_containers() -> list[tuple[dict, dict]]:
    """(workload, container) for each container of the repository's image."""
    return [(w, c) for w in workloads() for c in pod_spec(w)["containers"] if is_platform(c)]


def example_secret_data() -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: s.get("stringData") or {} for s in objects("Secret")}


def container_env(container: dict, namespace: str) -> dict[str, str]:
    """The environment the container gets: envFrom ConfigMaps, then env (secrets resolved from
    the example Secrets)."""
    configmaps = {
        c["metadata"]["name"]: c.get("data") or {}
        for c in objects("ConfigMap")
        if c["metadata"]["namespace"] == namespace
    }
    secrets = example_secret_data()
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = configmaps[ref["name"]][ref["key"]]
    return env


def settings_for(args: list[str]) -> type:
    if args[0] == "serve":
        return settings_class(args[1])
    if args[0] == "analysis-worker":
        return settings_class("analysis")
    assert args[0] == "migrate", args
    return ServiceSettings


# --- rendering and schema ---------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_every_kustomization_renders_to_valid_kubernetes_1_30(directory):
    docs = rendered(directory)
    assert docs
    for obj in docs:
        kubernetes_validate.validate(obj, "1.30", strict=True)


def test_strict_validation_rejects_a_misspelt_field():
    broken = copy.deepcopy(one("Deployment", "setup"))
    container = pod_spec(broken)["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(broken, "1.30", strict=True)


@pytest.mark.skipif(
    kr.kubectl() is None, reason="kubectl is not installed: nothing to compare the fallback with"
)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_fallback_renderer_matches_kubectl_kustomize(directory):
    def by_key(docs):
        return {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}

    assert by_key(kr.render_fallback(directory)) == by_key(kr.render_with_kubectl(directory))


def test_the_example_overlay_has_the_whole_platform():
    deployments = {d["metadata"]["name"] for d in objects("Deployment")}
    assert set(SERVICE_NAMES) <= deployments
    assert {"mosquitto", "registry"} <= deployments
    assert {s["metadata"]["name"] for s in objects("Service")} >= {
        *SERVICE_NAMES,
        "postgres",
        "mosquitto",
        "registry",
    }
    assert one("StatefulSet", "postgres")
    assert {n["metadata"]["name"] for n in objects("Namespace")} == {PLATFORM_NS, EDGE_NS}
    for obj in rendered():
        if obj["kind"] not in ("Namespace",):
            assert obj["metadata"]["namespace"] in (PLATFORM_NS, EDGE_NS), obj["metadata"]["name"]


def test_the_overlay_sets_the_platform_image_everywhere():
    images = {c["image"] for _, c in platform_containers()}
    assert images == {
        "registry.example.com/edge-platform:0.1.0",
        "registry.example.com/edge-platform-edge:0.1.0",
    }


# --- probes, ports, selectors -----------------------------------------------------------


def resolve_port(container: dict, port) -> int:
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in container.get("ports") or []}, port
        return port
    [number] = [p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port]
    return number


@pytest.mark.parametrize("service_name", SERVICE_NAMES)
def test_service_deployment_probes_the_port_its_command_listens_on(service_name):
    deployment = one("Deployment", service_name)
    [container] = pod_spec(deployment)["containers"]
    args = argv(container)
    assert args[:2] == ["serve", service_name]
    assert option(args, "--host") == "0.0.0.0"
    port = int(option(args, "--port"))
    assert port == settings_class(service_name).default_port
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert resolve_port(container, container[probe]["httpGet"]["port"]) == port, probe


def test_every_deployment_and_statefulset_has_both_probes_on_declared_ports():
    for workload in workloads():
        if workload["kind"] == "Job":
            continue
        for container in pod_spec(workload)["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                spec = container.get(probe)
                assert spec, f"{workload['metadata']['name']}/{container['name']} has no {probe}"
                for handler in ("httpGet", "tcpSocket"):
                    if handler in spec:
                        resolve_port(container, spec[handler]["port"])


def test_selectors_match_their_pod_labels():
    for workload in workloads():
        if workload["kind"] == "Job":
            continue
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]
    pods = [w for w in workloads() if w["kind"] != "Job"]
    for pdb in objects("PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert any(sel.items() <= w["spec"]["template"]["metadata"]["labels"].items() for w in pods)


def test_services_target_existing_container_ports():
    for service in objects("Service"):
        if service["spec"].get("type") == "ExternalName":
            continue
        selector = service["spec"]["selector"]
        targets = [
            w
            for w in workloads()
            if w["metadata"]["namespace"] == service["metadata"]["namespace"]
            and selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, (
            f"Service {service['metadata']['name']} selects {len(targets)} workloads"
        )
        containers = pod_spec(targets[0])["containers"]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert any(
                (
                    isinstance(target, int)
                    and target in {p["containerPort"] for p in c.get("ports", [])}
                )
                or (
                    isinstance(target, str)
                    and target in {p.get("name") for p in c.get("ports", [])}
                )
                for c in containers
            ), (service["metadata"]["name"], target)


def test_service_urls_in_the_config_point_at_the_services():
    config = one("ConfigMap", "edge-platform-config")["data"]
    for service_name in CALLED_SERVICE_NAMES:  # the console is called by browsers only
        url = urllib.parse.urlsplit(config[f"EDGE_{service_name.upper()}_URL"])
        assert url.hostname == f"{service_name}.{PLATFORM_NS}.svc"
        [port] = one("Service", service_name)["spec"]["ports"]
        assert url.port == port["port"] == settings_class(service_name).default_port


# --- settings ---------------------------------------------------------------------------


def test_every_platform_variable_is_a_real_setting():
    for workload, container in platform_containers():
        cls = settings_for(argv(container))
        unknown = set(container_env(container, workload["metadata"]["namespace"])) - env_names(cls)
        assert not unknown, (
            f"{workload['metadata']['name']}: not settings of {cls.__name__}: {sorted(unknown)}"
        )


@pytest.mark.parametrize("service_name", SERVICE_NAMES)
def test_service_settings_load_from_the_manifests(service_name, tmp_path):
    [container] = pod_spec(one("Deployment", service_name))["containers"]
    env = container_env(container, PLATFORM_NS)
    if service_name == "setup":
        # The signing key is a file from the edge-signing-key Secret, mounted in setup's pod only.
        from shared.signing import write_private_key

        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        secret = {
            v["name"]: v["secret"]["secretName"]
            for v in pod_spec(one("Deployment", "setup"))["volumes"]
            if "secret" in v
        }
        assert secret == {"signing-key": "edge-signing-key"}
        assert env["SETUP_SIGNING_KEY_FILES"].startswith(mounts["signing-key"] + "/")
        env["SETUP_SIGNING_KEY_FILES"] = str(write_private_key(tmp_path / "setup-signing.pem"))
    else:
        assert not any("secret" in v for v in pod_spec(one("Deployment", service_name))["volumes"])
    with environment(env):
        settings = settings_class(service_name)(port=int(option(argv(container), "--port")))
    assert settings.env == "production"
    assert settings.migrate_on_start is False
    assert urllib.parse.urlsplit(settings.database_url).hostname == f"postgres.{PLATFORM_NS}.svc"
    # No root: the operator's token by its hash (the console holds nothing of it), the service's
    # own credential from its own Secret, no signing key but setup's.
    assert settings.service_token is None and settings.edge_token_secret is None
    assert "EDGE_OPERATOR_TOKEN" not in env and settings.operator_token is None
    tokens = example_secret_data()["edge-platform-tokens"]
    if service_name == "console":
        assert settings.operator_digest() is None
    else:
        assert settings.operator_digest() == tokens["operator-token-sha256"]
    assert (settings.signer() is not None) == (service_name == "setup")
    own = example_secret_data()[f"edge-credential-{service_name}"]["credential"]
    assert settings.own_credential() == own


def test_database_url_matches_the_in_cluster_postgres():
    data = example_secret_data()["edge-platform-database"]
    url = urllib.parse.urlsplit(data["url"])
    postgres = pod_spec(one("StatefulSet", "postgres"))["containers"][0]
    env = {e["name"]: e for e in postgres["env"]}
    assert url.password == data[env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]]
    assert url.username == env["POSTGRES_USER"]["value"]
    assert url.path == "/" + env["POSTGRES_DB"]["value"]
    assert url.port == 5432 and url.scheme == "postgresql+asyncpg"


def test_migration_job_migrates_every_service():
    job = one("Job", "edge-migrate")
    [container] = pod_spec(job)["containers"]
    assert argv(container) == ["migrate"]
    assert "EDGE_DATABASE_URL" in container_env(container, PLATFORM_NS)
    assert pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")
    assert one("ConfigMap", "edge-platform-config")["data"]["EDGE_MIGRATE_ON_START"] == "false"


# --- secrets ------------------------------------------------------------------------------


def test_every_secret_reference_resolves_and_example_secrets_are_marked():
    secrets = example_secret_data()
    for workload in workloads():
        for container in pod_spec(workload)["containers"]:
            for var in container.get("env") or []:
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], (workload["metadata"]["name"], ref)
    for secret in objects("Secret"):
        assert secret["metadata"]["annotations"]["edge-platform/example"] == "true"
        for key, value in secret["stringData"].items():
            if key != "username" and not key.endswith("-sha256"):  # a hash: not a secret
                assert "EXAMPLE" in value, (secret["metadata"]["name"], key)
    # Secret settings (SecretStr fields, and the database URL with its password) never sit in a
    # ConfigMap or a plain env value.
    secret_names = {"EDGE_DATABASE_URL"}.union(
        *(env_names(settings_class(s), secrets_only=True) for s in SERVICE_NAMES)
    )
    assert {"EDGE_OPERATOR_TOKEN", "EDGE_CONSOLE_TOKEN", "MASTER_REGISTRY_PASSWORD"} <= secret_names
    for _workload, container in platform_containers():
        for var in container.get("env") or []:
            if var["name"] in secret_names:
                assert "valueFrom" in var, var["name"]
    for configmap in objects("ConfigMap"):
        assert not secret_names & set(configmap.get("data", {})), configmap["metadata"]["name"]


def test_the_base_ships_no_secrets():
    assert not [o for o in rendered(K8S / "base") if o["kind"] == "Secret"]


# --- security -----------------------------------------------------------------------------


def test_pods_run_as_non_root_with_read_only_root_and_resources():
    for workload in workloads():
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)


def test_only_the_master_gets_a_kubernetes_token():
    for workload in workloads():
        spec = pod_spec(workload)
        if workload["metadata"]["name"] == "master":
            assert spec["serviceAccountName"] == "edge-master"
            assert spec["automountServiceAccountToken"] is True
        elif workload["metadata"]["name"] == "prometheus":
            assert spec["serviceAccountName"] == "prometheus"  # reads pods: see below
        else:
            assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]


# kubernetes client method verb -> RBAC verb; api object -> (apiGroup, resource).
_CLIENT_VERBS = {
    "create": "create",
    "read": "get",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
    "list": "list",
}
_CLIENT_KINDS = {
    "deployment": ("apps", "deployments"),
    "config_map": ("", "configmaps"),
    "secret": ("", "secrets"),
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "service": ("", "services"),
    "event": ("", "events"),
}


def driver_permissions() -> dict[tuple[str, str], set[str]]:
    """What the master's Kubernetes driver calls, read from its source: apps/core API methods
    ``<verb>_namespaced_<kind>``."""
    source = (REPO / "services" / "master" / "drivers" / "kubernetes.py").read_text()
    calls = re.findall(
        r"\.(create|read|replace|patch|delete|list)_namespaced_([a-z_]+?)(?:_status)?\(", source
    )
    assert calls, "the driver's API calls were not found"
    assert not re.search(r"_cluster_|list_node|read_node|_for_all_namespaces", source), (
        "cluster-wide calls need a ClusterRole"
    )
    needed: dict[tuple[str, str], set[str]] = {}
    for verb, kind in calls:
        needed.setdefault(_CLIENT_KINDS[kind], set()).add(_CLIENT_VERBS[verb])
    return needed


def test_master_rbac_is_exactly_what_its_driver_calls_in_the_edge_namespace():
    assert not objects("ClusterRole") and not objects("ClusterRoleBinding")
    [role] = [r for r in objects("Role") if r["metadata"]["namespace"] == EDGE_NS]
    [binding] = [b for b in objects("RoleBinding") if b["metadata"]["namespace"] == EDGE_NS]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == EDGE_NS
    from services.master.drivers.manifests import KubernetesOptions

    assert KubernetesOptions().namespace == EDGE_NS
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == driver_permissions()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "edge-master", "namespace": PLATFORM_NS}
    ]
    assert one("ServiceAccount", "edge-master")["metadata"]["namespace"] == PLATFORM_NS


def test_prometheus_only_reads_pods_of_the_platform_namespace():
    roles = [r for r in objects("Role") if r["metadata"]["namespace"] != EDGE_NS]
    assert [r["metadata"]["name"] for r in roles] == ["prometheus-discovery"]
    assert roles[0]["metadata"]["namespace"] == PLATFORM_NS
    assert roles[0]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    [binding] = [b for b in objects("RoleBinding") if b["metadata"]["namespace"] == PLATFORM_NS]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": PLATFORM_NS}
    ]


def test_only_the_platform_reaches_the_database():
    [policy] = [
        p
        for p in objects("NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name") == "postgres"
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert set(source) == {"podSelector"}, (
        "no namespaceSelector or ipBlock: same-namespace pods only"
    )
    client_label = source["podSelector"]["matchLabels"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    postgres_labels = one("StatefulSet", "postgres")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= postgres_labels.items()
    # Who carries the client label: exactly the pods that hold the database URL.
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        is_client = client_label.items() <= labels.items()
        holds_url = any(
            "EDGE_DATABASE_URL" in container_env(c, workload["metadata"]["namespace"])
            for c in pod_spec(workload)["containers"]
            if is_platform(c)
        )
        assert is_client == holds_url, workload["metadata"]["name"]


# --- scaling ------------------------------------------------------------------------------


def test_vms_runs_several_replicas_and_autoscales():
    vms = one("Deployment", "vms")
    hpa = one("HorizontalPodAutoscaler", "vms")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "vms",
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= vms["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilisation is measured against the request: there must be one.
    assert pod_spec(vms)["containers"][0]["resources"]["requests"]["cpu"]
    assert one("PodDisruptionBudget", "vms")["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_master_keeps_its_packages_on_its_persistent_volume():
    deployment = one("Deployment", "master")
    [container] = pod_spec(deployment)["containers"]
    with environment(container_env(container, PLATFORM_NS)):
        settings = settings_class("master")()
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    for path in (settings.artifact_dir, settings.package_dir):
        [mount] = [m for m in mounts if str(path).startswith(m.rstrip("/") + "/")]
        claim = volumes[mounts[mount]]["persistentVolumeClaim"]["claimName"]
        assert one("PersistentVolumeClaim", claim)
    assert settings.kube_in_cluster is True
    assert settings.registry_url and settings.registry_password is not None
    assert (
        settings.vms_public_url == one("ConfigMap", "edge-platform-config")["data"]["EDGE_VMS_URL"]
    )


def test_master_never_runs_twice_and_the_optimizer_elects_a_leader():
    # The master's package volume is ReadWriteOnce: one pod, replaced with Recreate.
    master = one("Deployment", "master")
    assert master["spec"]["replicas"] == 1 and master["spec"]["strategy"]["type"] == "Recreate"
    # Several optimizer replicas are safe only because one holds the lease at a time.
    optimizer = one("Deployment", "optimizer")
    assert optimizer["spec"]["replicas"] >= 2
    assert {"lease_ttl_s", "lease_renew_s"} <= set(settings_class("optimizer").model_fields)


# --- optional components share their configuration with compose ------------------------


@pytest.mark.parametrize(
    ("configmap", "key", "source"),
    [
        ("mosquitto-config", "mosquitto.conf", "deploy/mosquitto.conf"),
        ("registry-config", "config.yml", "deploy/registry/config.yml"),
    ],
)
def test_component_configuration_is_the_compose_one(configmap, key, source):
    assert one("ConfigMap", configmap)["data"][key] == (REPO / source).read_text()


def test_external_postgres_is_a_drop_in_for_the_in_cluster_one():
    [external] = kr.render(K8S / "optional" / "external-postgres")
    internal = next(o for o in rendered(K8S / "optional" / "postgres") if o["kind"] == "Service")
    assert external["spec"]["type"] == "ExternalName"
    assert external["metadata"]["name"] == internal["metadata"]["name"]
    assert external["metadata"]["namespace"] == internal["metadata"]["namespace"]
    assert [p["port"] for p in external["spec"]["ports"]] == [
        p["port"] for p in internal["spec"]["ports"]
    ]


def test_analysis_workers_on_gpus_scale_on_the_queue_and_a_cpu_variant_exists():
    gpu = one("Deployment", "analysis-worker-gpu")
    [container] = pod_spec(gpu)["containers"]
    assert option(argv(container), "--device") == "cuda:0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    hpa = one("HorizontalPodAutoscaler", "analysis-worker-gpu")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "analysis-worker-gpu"
    [metric] = hpa["spec"]["metrics"]
    assert (
        metric["type"] == "External"
        and metric["external"]["metric"]["name"] == "analysis_queue_depth"
    )
    [cpu] = pod_spec(one("Deployment", "analysis-worker-cpu"))["containers"]
    assert (
        option(argv(cpu), "--device") == "cpu"
        and "nvidia.com/gpu" not in cpu["resources"]["limits"]
    )
    # The worker's metrics port is the one its probes and its command name.
    assert option(argv(container), "--metrics-port") == str(
        resolve_port(container, container["livenessProbe"]["httpGet"]["port"])
    )


def test_only_the_analysis_pods_reach_redis():
    [policy] = [
        p
        for p in objects("NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name") == "redis"
    ]
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    client_label = source["podSelector"]["matchLabels"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        uses_redis = any(
            "EDGE_REDIS_URL" in container_env(c, workload["metadata"]["namespace"])
            for c in pod_spec(workload)["containers"]
            if is_platform(c)
        )
        assert (client_label.items() <= labels.items()) == uses_redis, workload["metadata"]["name"]


SITE = K8S / "overlays" / "site-example"


def test_a_site_overlay_is_a_master_with_its_registry_reporting_to_the_central_setup():
    """k8s/overlays/site-example: what one site's cluster runs (a master, its database, its
    registry and the nodes' trust of it); the central services are not there; the master's
    settings name it, its cluster(s) and the central setup, and load."""
    docs = rendered(SITE)
    workloads = {
        o["metadata"]["name"]
        for o in docs
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    }
    assert "master" in workloads and not workloads & {"setup", "optimizer", "vms"}
    assert {"postgres", "registry", "edge-migrate"} <= workloads
    config = {}
    for o in docs:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] in (
            "edge-platform-config",
            "edge-master-config",
        ):
            config.update(o["data"])
    assert config["MASTER_NAME"] and config["MASTER_CLUSTERS"]
    assert urllib.parse.urlsplit(config["EDGE_SETUP_URL"]).hostname != "setup.edge-platform.svc"
    secrets = {"EDGE_MASTER_TOKEN": "x" * 32, "EDGE_OPERATOR_TOKEN_SHA256": "0" * 64}
    with environment({**config, **secrets}):
        settings = settings_class("master")(port=8002)
    assert settings.name == config["MASTER_NAME"]
    assert settings.cluster_names == config["MASTER_CLUSTERS"].split(",")
    assert settings.own_url == config["MASTER_PUBLIC_URL"]
    assert not settings.builds_for_fleet  # the default master (central) builds
