"""``edgectl credentials``: setup's signing key and the credentials it signs (shared.signing).

- ``keygen --out FILE``: a new Ed25519 signing key for setup (SETUP_SIGNING_KEY_FILES);
- ``keys FILE...``: the public keys of signing key files, as EDGE_PUBLIC_KEYS takes them;
- ``issue --service NAME`` / ``issue --operator``: a credential signed by setup: asked of the
  running setup (POST /credentials, with EDGE_OPERATOR_TOKEN), or signed here with
  ``--key-file`` (where setup's key is, e.g. before the stack starts);
- ``revoke SERIAL``: one credential revoked alone (POST /credentials/revocations);
- ``bundle``: the key and every service's credential file, for compose and Kubernetes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from shared.credentials import (
    SIGNABLE_SERVICES,
    issue_operator_credential,
    issue_service_credential,
)
from shared.signing import Signer, key_id, load_private_file, public_text, write_private_key

credentials = typer.Typer(
    help="Setup's signing key and the credentials it signs.", no_args_is_help=True
)


@credentials.command("keygen")
def keygen(
    out: Path = typer.Option(..., "--out", help="PEM file to write (mode 0600; must not exist)"),
) -> None:
    """A new Ed25519 signing key for setup (give its path in SETUP_SIGNING_KEY_FILES)."""
    if out.exists():
        raise typer.BadParameter(
            f"{out} exists: a signing key is never overwritten", param_hint="--out"
        )
    write_private_key(out)
    public = load_private_file(out).public_key()
    typer.echo(f"wrote {out} (key id {key_id(public)})")
    typer.echo(f"EDGE_PUBLIC_KEYS={key_id(public)}={public_text(public)}")


@credentials.command("keys")
def keys(
    files: list[Path] = typer.Argument(..., help="setup's signing key files (PEM)"),
) -> None:
    """The public keys of signing key files, in EDGE_PUBLIC_KEYS form (nothing secret)."""
    publics = [load_private_file(f).public_key() for f in files]
    typer.echo(",".join(f"{key_id(k)}={public_text(k)}" for k in publics))


@credentials.command("issue")
def issue(
    service: str | None = typer.Option(
        None, "--service", help=f"the service it is for: {', '.join(SIGNABLE_SERVICES)}"
    ),
    operator: bool = typer.Option(False, "--operator", help="an operator credential instead"),
    ttl_days: int = typer.Option(365, "--ttl-days", min=1, max=3650, help="lifetime in days"),
    key_file: Path | None = typer.Option(
        None,
        "--key-file",
        help="sign here with setup's key file instead of asking the running setup",
    ),
) -> None:
    """A credential signed by setup: a service's (its grants only) or the operator's. Prints the
    token only (give it to the service as EDGE_<SERVICE>_TOKEN or in EDGE_CREDENTIAL_FILE)."""
    if operator == (service is not None):
        raise typer.BadParameter("give either --service NAME or --operator")
    if service is not None and service not in SIGNABLE_SERVICES:
        raise typer.BadParameter(f"one of {', '.join(SIGNABLE_SERVICES)}", param_hint="--service")
    if key_file is not None:
        signer = Signer.from_file(key_file)
        ttl_s = ttl_days * 86400
        token = (
            issue_operator_credential(signer, ttl_s=ttl_s)
            if operator
            else issue_service_credential(str(service), signer, ttl_s=ttl_s)
        )
        typer.echo(token)
        return
    from edgectl.ops.client import error_text, fail, request

    body = {
        "kind": "operator" if operator else "service",
        "service": service,
        "ttl_days": ttl_days,
    }
    response = request("POST", "setup", "/credentials", body=body)
    if response.status_code != 201:
        fail(f"setup answered {response.status_code}: {error_text(response)}")
    typer.echo(response.json()["token"])


@credentials.command("revoke")
def revoke(
    what: str = typer.Argument(
        ..., help="the credential's serial (the field after its expiry), or the credential itself"
    ),
    expires_at: int | None = typer.Option(
        None,
        "--expires-at",
        help="when the credential expires (unix s): its serial is listed until then (default: "
        "read from the credential, else the longest lifetime setup issues)",
    ),
) -> None:
    """Revoke one signed credential alone (a service's or an operator's): every service refuses
    it once the change reaches it (at once; at the latest after EDGE_REVOCATIONS_REFRESH_S). Asks
    the running setup (POST /credentials/revocations, with EDGE_OPERATOR_TOKEN)."""
    from edgectl.ops.client import error_text, fail, request

    body: dict[str, object] = {"credential": what} if "." in what else {"serial": what}
    if expires_at is not None:
        body["expires_at"] = expires_at
    response = request("POST", "setup", "/credentials/revocations", body=body)
    if response.status_code != 201:
        fail(f"setup answered {response.status_code}: {error_text(response)}")
    answer = response.json()
    typer.echo(f"revoked {answer['serial']} (listed until {answer['expires_at']})")


BUNDLE_SERVICES = ("setup", "master", "optimizer", "vms", "analysis", "console")
OPERATOR_FILE = "operator.env"


def write_bundle(out: Path, *, ttl_days: int = 365) -> dict[str, str]:
    """Setup's signing key and one environment file per service (compose.yaml, k8s Secrets), in
    ``out``: ``setup-signing.pem`` (setup's only), ``<service>.env`` with that service's own
    credential signed by the key (the master's also with the agents' key root), and
    ``operator.env`` with the operator's token, for the operator alone (no service is given it:
    the console has its own credential, and setup checks what the operator signs in with).
    Existing files are kept (a second run adds only what is missing; a console.env of before,
    which held the operator's token, is split into operator.env and the console's credential).
    Answers the lines for the shared .env: EDGE_OPERATOR_TOKEN_SHA256 (the operator's token
    checked by hash)."""
    import hashlib
    import os
    import secrets

    out.mkdir(parents=True, exist_ok=True)
    key = out / "setup-signing.pem"
    if not key.exists():
        write_private_key(key)
    signer = Signer.from_file(key)

    def write(name: str, values: dict[str, str], *, replace: bool = False) -> None:
        path = out / name
        if path.exists():
            if not replace:
                return
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in values.items()))

    operator_file = out / OPERATOR_FILE
    console = out / "console.env"
    older = _read_env(console).get("EDGE_OPERATOR_TOKEN") if console.exists() else None
    write(OPERATOR_FILE, {"EDGE_OPERATOR_TOKEN": older or secrets.token_urlsafe(32)})
    operator = _read_env(operator_file)["EDGE_OPERATOR_TOKEN"]
    for name in SIGNABLE_SERVICES:
        values = {
            f"EDGE_{name.upper()}_TOKEN": issue_service_credential(
                name, signer, ttl_s=ttl_days * 86400
            )
        }
        if name == "master":
            values["EDGE_AGENT_KEY_SECRET"] = secrets.token_urlsafe(32)
        write(f"{name}.env", values, replace=name == "console" and older is not None)
    return {"EDGE_OPERATOR_TOKEN_SHA256": hashlib.sha256(operator.encode()).hexdigest()}


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


@credentials.command("bundle")
def bundle(
    out: Path = typer.Option(
        Path("deploy/credentials"), "--out", help="folder for the key and the per-service files"
    ),
    ttl_days: int = typer.Option(365, "--ttl-days", min=1, max=3650),
) -> None:
    """Setup's signing key and each service's own credential file, for compose.yaml (and k8s
    Secrets): no service but setup gets the key, none the operator's token (operator.env is the
    operator's)."""
    shared = write_bundle(out, ttl_days=ttl_days)
    typer.echo(
        f"wrote {out}/: setup-signing.pem, {OPERATOR_FILE} and "
        f"{', '.join(f'{n}.env' for n in BUNDLE_SERVICES)}"
    )
    typer.echo(
        f"the operator's token is in {OPERATOR_FILE} (EDGE_OPERATOR_TOKEN: sign in to the console "
        "with it; give it to no service); put this in .env:"
    )
    for name, value in shared.items():
        typer.echo(f"{name}={value}")


def register(app: typer.Typer) -> None:
    app.add_typer(credentials, name="credentials")
