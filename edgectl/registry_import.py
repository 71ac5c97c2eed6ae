"""``edgectl registry import-base FILE``: a base image into the private registry from a file, for a
LAN with no internet. FILE is a ``docker save``/``podman save`` tarball, an OCI layout folder or
an OCI archive; skopeo copies it (every architecture it holds) to the registry under the name the
master resolves ``FROM`` lines to: the image's own name without its registry host
(``nvcr.io/nvidia/l4t-base:r35.4.1`` -> ``REGISTRY/nvidia/l4t-base:r35.4.1``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import typer


def _archive_name(path: Path) -> tuple[str, str | None]:
    """(skopeo source, the image name the file records, if any)."""
    if path.is_dir():
        if not (path / "oci-layout").is_file():
            raise typer.BadParameter(f"{path} is a folder but not an OCI layout (no oci-layout)")
        return f"oci:{path}", _oci_name(json.loads((path / "index.json").read_text()))
    try:
        with tarfile.open(path) as tf:
            names = set(tf.getnames())
            if "oci-layout" in names or "./oci-layout" in names:
                member = "index.json" if "index.json" in names else "./index.json"
                f = tf.extractfile(member)
                return f"oci-archive:{path}", _oci_name(json.loads(f.read())) if f else None
            member = "manifest.json" if "manifest.json" in names else "./manifest.json"
            f = tf.extractfile(member) if member in names else None
            if f is None:
                raise typer.BadParameter(
                    f"{path} is neither a docker/podman save tarball (no manifest.json) "
                    "nor an OCI archive"
                )
            tags = json.loads(f.read())[0].get("RepoTags") or []
            return f"docker-archive:{path}", tags[0] if tags else None
    except tarfile.TarError as exc:
        raise typer.BadParameter(f"{path} is not a tar archive: {exc}") from None


def _oci_name(index: dict[str, Any]) -> str | None:
    for m in index.get("manifests", []):
        name = (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if name and ("/" in name or ":" in name):
            return str(name)
    return None


def import_base(
    file: Path = typer.Argument(..., exists=True, help="docker/podman save tarball, OCI layout"),
    name: str = typer.Option(
        None,
        "--name",
        help="the image's name as FROM lines write it (nvcr.io/nvidia/l4t-base:r35.4.1); "
        "default: the name recorded in the file",
    ),
    registry: str = typer.Option(
        None,
        "--registry",
        envvar="MASTER_REGISTRY_URL",
        help="the private registry: http://HOST:PORT, https://HOST:PORT or HOST:PORT "
        "(default: MASTER_REGISTRY_URL)",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="plain HTTP (or no TLS verification) for a HOST:PORT registry"
    ),
    username: str = typer.Option(None, "--username", help="push account of the registry"),
    password_env: str = typer.Option(
        None, "--password-env", metavar="VAR", help="read the password from this variable"
    ),
) -> None:
    """Bring a base image into the private registry from a file (no internet needed)."""
    from services.master.registry.config import RegistryConfig
    from services.master.registry.dockerfile import private_name
    from shared.errors import Invalid

    if not registry:
        raise typer.BadParameter("give --registry (or set MASTER_REGISTRY_URL)")
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise typer.BadParameter("skopeo is not installed (apt-get install skopeo)")
    source, recorded = _archive_name(file)
    image = name or recorded
    if not image:
        raise typer.BadParameter(f"{file} records no image name: give --name", param_hint="--name")
    config = RegistryConfig(url=registry, insecure=insecure)
    try:
        dest = private_name(image, config.host)
    except Invalid as exc:
        raise typer.BadParameter(exc.message, param_hint="--name") from None
    args = [skopeo, "copy", "--all", "--quiet"]
    if config.base_url.startswith("http://") or insecure:
        args.append("--dest-tls-verify=false")
    if username:
        password = os.environ.get(password_env or "", "")
        if not password:
            raise typer.BadParameter("--username needs --password-env naming a set variable")
        args += ["--dest-creds", f"{username}:{password}"]
    with tempfile.TemporaryDirectory() as tmp:
        digest_file = Path(tmp) / "digest"
        args += ["--digestfile", str(digest_file), source, f"docker://{dest}"]
        out = subprocess.run(args, capture_output=True, text=True)
        if out.returncode != 0:
            typer.echo(f"skopeo could not copy {file} to {dest}: {out.stderr.strip()}", err=True)
            raise typer.Exit(1)
        digest = digest_file.read_text().strip() if digest_file.exists() else ""
    typer.echo(f"{dest} {digest}".strip())
    typer.echo(f"# FROM {image} now resolves to {dest}", err=True)


def register(app: typer.Typer) -> None:
    from edgectl.registry_cmd import registry_app

    registry_app.command("import-base")(import_base)
