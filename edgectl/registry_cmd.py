"""``edgectl registry node-config``: what a node needs to trust and pull from the private
registry."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path

import typer

from services.master.registry.node_config import PULL_SECRET_NAME

registry_app = typer.Typer(help="The private image registry.", no_args_is_help=True)


class Part(StrEnum):
    hosts = "hosts"
    daemon = "daemon"
    secret = "secret"


def _read_password(password_env: str | None, password_stdin: bool) -> str | None:
    if password_env and password_stdin:
        raise typer.BadParameter("give either --password-env or --password-stdin, not both")
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise typer.BadParameter(
                f"environment variable {password_env} is not set", param_hint="--password-env"
            )
        return value
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise typer.BadParameter("no password on standard input", param_hint="--password-stdin")
        return value
    return None


@registry_app.command("node-config")
def node_config(
    registry: str = typer.Option(
        ..., "--registry", help="the registry as nodes reach it: HOST:PORT"
    ),
    username: str = typer.Option(
        None, "--username", help="pull account (for the Kubernetes imagePullSecret)"
    ),
    password_env: str = typer.Option(
        None,
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable",
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of standard input"
    ),
    ca_file: Path = typer.Option(
        None,
        "--ca-file",
        exists=True,
        dir_okay=False,
        help="CA certificate that signed the registry's TLS certificate",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="the registry speaks plain HTTP (no TLS)"
    ),
    namespace: str = typer.Option(
        "edge-ai", "--namespace", help="namespace of the imagePullSecret"
    ),
    secret_name: str = typer.Option(
        PULL_SECRET_NAME,
        "--secret-name",
        help="name of the imagePullSecret: the AI pods reference MASTER_IMAGE_PULL_SECRET",
    ),
    only: Part = typer.Option(
        None, "--only", help="print just one part (for piping): hosts | daemon | secret"
    ),
    out_dir: Path = typer.Option(
        None,
        "--out-dir",
        file_okay=False,
        help="also write hosts.toml, daemon.json, pull-secret.yaml here",
    ),
) -> None:
    """Print containerd hosts.toml, a Docker daemon.json fragment and a Kubernetes pull Secret.

    The password is never taken from the command line (it would show in `ps` and shell
    history) and is written only inside the Secret's base64 .dockerconfigjson.
    """
    from services.master.registry import node_config as nc

    password = _read_password(password_env, password_stdin)
    if (username is None) != (password is None):
        raise typer.BadParameter(
            "--username needs a password (--password-env VAR or --password-stdin), and the reverse"
        )
    if insecure and ca_file:
        raise typer.BadParameter("--ca-file is for a TLS registry; --insecure means plain HTTP")
    try:
        host = nc.check_host(registry)
        files = nc.render_all(
            host,
            username=username,
            password=password,
            insecure=insecure,
            ca_file=str(ca_file) if ca_file else None,
            namespace=namespace,
            name=secret_name,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    if only is not None:
        key = {"hosts": "hosts.toml", "daemon": "daemon.json", "secret": "pull-secret.yaml"}[
            only.value
        ]
        if key not in files:
            raise typer.BadParameter(
                "the Secret needs --username and a password", param_hint="--only"
            )
        typer.echo(files[key], nl=False)
    else:
        cdir = nc.containerd_dir(host)
        typer.echo(f"# ---- containerd: {cdir}/hosts.toml ----")
        if ca_file:
            typer.echo(f"# copy {ca_file} to {cdir}/{nc.CONTAINERD_CA_NAME}")
        typer.echo(
            '# containerd 1.6/1.7 reads it only with config_path = "/etc/containerd/certs.d" in '
            '[plugins."io.containerd.grpc.v1.cri".registry] of /etc/containerd/config.toml; '
            f"`edgectl registry install-trust --registry {host}"
            + (" --insecure" if insecure else "")
            + "` sets it (and migrates registry.mirrors), then restart containerd"
        )
        typer.echo(files["hosts.toml"])
        typer.echo("# ---- docker: merge into /etc/docker/daemon.json, then restart dockerd ----")
        if ca_file:
            typer.echo(
                f"# copy {ca_file} to /etc/docker/certs.d/{host}/ca.crt "
                "(no daemon.json entry needed)"
            )
        typer.echo(files["daemon.json"])
        if "pull-secret.yaml" in files:
            name = secret_name
            typer.echo(
                "# ---- kubernetes: kubectl apply -f - ; pods "
                f"use imagePullSecrets: [{{name: {name}}}] ----"
            )
            typer.echo("---")
            typer.echo(files["pull-secret.yaml"], nl=False)
        else:
            typer.echo(
                "# ---- kubernetes: no pull Secret (registry without "
                "credentials; pass --username to get one) ----"
            )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = out_dir / name
            # The Secret holds the credential: owner-only from the first byte.
            fd = os.open(
                path,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                0o600 if name == "pull-secret.yaml" else 0o644,
            )
            with os.fdopen(fd, "w") as f:
                f.write(text)
        typer.echo(f"# wrote {', '.join(sorted(files))} to {out_dir}", err=True)


def _tristate(text: str | None, name: str) -> bool | None:
    value = (text or "auto").strip().lower()
    if value not in ("auto", "true", "false"):
        raise typer.BadParameter(f"{name} must be auto, true or false, not {value!r}")
    return None if value == "auto" else value == "true"


def _run_hook(command: str, what: str) -> None:
    import shlex
    import subprocess

    done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        typer.echo(f"{what}: `{command}` exited {done.returncode}: {done.stderr.strip()}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{what}: ran `{command}`")


@registry_app.command("install-trust")
def install_trust(
    from_dir: Path = typer.Option(
        None,
        "--from-dir",
        exists=True,
        file_okay=False,
        help="folder holding 'registry' (HOST:PORT), optionally 'insecure' (true/false), "
        "'ca.crt', 'containerd' and 'docker' (auto/true/false): the registry-trust ConfigMap, "
        "mounted. Or give --registry/--insecure/--ca-file instead",
    ),
    registry: str = typer.Option(None, "--registry", help="the registry as nodes reach it"),
    insecure: bool = typer.Option(False, "--insecure", help="the registry speaks plain HTTP"),
    ca_file: Path = typer.Option(
        None, "--ca-file", exists=True, dir_okay=False, help="CA of the registry's TLS certificate"
    ),
    containerd: str = typer.Option(
        "auto",
        "--containerd",
        help="edit containerd's config.toml: auto (when it exists), true, false",
    ),
    docker: str = typer.Option(
        "auto",
        "--docker",
        help="edit Docker's daemon.json: auto (when it exists), true, false",
    ),
    root: Path = typer.Option(
        Path("/"), "--root", file_okay=False, help="the node's filesystem root (a host mount)"
    ),
    restart_containerd: str = typer.Option(
        None,
        "--restart-containerd",
        metavar="CMD",
        help="run CMD when config.toml changed (e.g. 'systemctl restart containerd')",
    ),
    reload_docker: str = typer.Option(
        None,
        "--reload-docker",
        metavar="CMD",
        help="run CMD when daemon.json changed (e.g. 'systemctl reload docker')",
    ),
    changes_file: Path = typer.Option(
        None,
        "--changes-file",
        dir_okay=False,
        help="write 'containerd' and/or 'docker' here, one a line, for what must be restarted",
    ),
) -> None:
    """Install the registry's trust on this node: containerd's config_path and hosts.toml (legacy
    registry.mirrors migrated), Docker's insecure-registries, the CA for both. Idempotent: files
    change only when their content must, config.toml and daemon.json are backed up first, and the
    restart/reload commands run only when they changed. No credentials are written."""
    from services.master.registry import node_config as nc
    from services.master.registry.runtime_config import RuntimeConfigError

    def read(name: str) -> str | None:
        if from_dir is None:
            return None
        path = from_dir / name
        return path.read_text().strip() if path.is_file() and path.read_text().strip() else None

    if (from_dir is None) == (registry is None):
        raise typer.BadParameter("give either --from-dir or --registry")
    host = registry or read("registry")
    if host is None:
        raise typer.BadParameter(f"{from_dir}/registry is missing or empty: give HOST:PORT")
    if from_dir is not None:
        insecure_text = (read("insecure") or "false").lower()
        if insecure_text not in ("true", "false"):
            raise typer.BadParameter(
                f"{from_dir}/insecure must be true or false, not {insecure_text!r}"
            )
        insecure = insecure_text == "true"
        ca = read("ca.crt")
        use_containerd = _tristate(read("containerd") or containerd, "containerd")
        use_docker = _tristate(read("docker") or docker, "docker")
    else:
        ca = ca_file.read_text().strip() if ca_file else None
        use_containerd = _tristate(containerd, "--containerd")
        use_docker = _tristate(docker, "--docker")
    try:
        result = nc.install_trust(
            str(root),
            host,
            insecure=insecure,
            ca_pem=ca + "\n" if ca else None,
            containerd=use_containerd,
            docker=use_docker,
        )
    except (ValueError, RuntimeConfigError) as exc:
        raise typer.BadParameter(str(exc)) from None
    for path in result.backups:
        typer.echo(f"backed up {path}")
    for path in result.written:
        typer.echo(f"installed {path}")
    if not result.written:
        typer.echo("nothing to change: the node already trusts the registry")
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if changes_file is not None:
        lines = [
            n
            for n, on in (
                ("containerd", result.restart_containerd),
                ("docker", result.reload_docker),
            )
            if on
        ]
        changes_file.write_text("".join(f"{line}\n" for line in lines))
    if result.restart_containerd:
        if restart_containerd:
            _run_hook(restart_containerd, "containerd restart")
        else:
            typer.echo("containerd must be restarted to read config.toml")
    if result.reload_docker:
        if reload_docker:
            _run_hook(reload_docker, "docker reload")
        else:
            typer.echo("dockerd must be reloaded (SIGHUP) to read daemon.json")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
