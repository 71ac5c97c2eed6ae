"""``edgectl tls``: a local CA and certificates for the services, the proxy, the broker and the
agents (edgectl.tls)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgectl.tls import CA_FILE, make_ca, make_cert

tls = typer.Typer(help="A local certificate authority and certificates.", no_args_is_help=True)


@tls.command("ca")
def ca(
    out: Path = typer.Option(Path("tls"), "--out", help="folder for ca.pem and ca-key.pem"),
) -> None:
    """A CA (kept if the folder has one): give ca.pem to every client (agents, the services'
    SSL_CERT_FILE); keep ca-key.pem off the servers."""
    path = make_ca(out)
    typer.echo(f"CA: {path} (key {out / 'ca-key.pem'})")


@tls.command("cert")
def cert(
    names: list[str] = typer.Argument(..., help="DNS names and IP addresses it is valid for"),
    ca_dir: Path = typer.Option(Path("tls"), "--ca", help="the CA's folder (edgectl tls ca)"),
    out: Path = typer.Option(Path("tls"), "--out", help="folder to write NAME.pem, NAME-key.pem"),
    name: str = typer.Option("server", "--name", help="file name stem"),
    days: int = typer.Option(397, "--days", min=1, max=3650),
    client: bool = typer.Option(False, "--client", help="also for client authentication (mTLS)"),
) -> None:
    """A certificate signed by the CA, for the names given."""
    if not (ca_dir / CA_FILE).exists():
        raise typer.BadParameter(f"no CA in {ca_dir}: run `edgectl tls ca --out {ca_dir}`")
    cert_path, key_path = make_cert(ca_dir, names, out, name=name, days=days, client=client)
    typer.echo(f"certificate: {cert_path} (key {key_path})")


def register(app: typer.Typer) -> None:
    app.add_typer(tls, name="tls")
