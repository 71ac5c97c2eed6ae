"""TLS for agent traffic (issue 16 item 3): the agent serves https and verifies the master; the
master verifies the agent with a CA setting; the master calls agents only at allowed addresses.
Certificates come from a CA made in the test (loopback only)."""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.master.drivers.agent import AgentDriver
from services.master.drivers.base import (
    AiArtifact,
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    Workload,
)
from shared.agent_urls import parse_networks
from tests.agent.helpers import (
    AGENT_KEY,
    AGENT_TEST_ENV,
    ArtifactServer,
    agent_env,
    kill_leftovers,
    ticker_package,
)
from tests.helpers.env import free_port
from tests.helpers.processes import Proc, edgectl


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(
    directory: Path, common: str
) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{common}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_cert(directory: Path, name: str, ca_key, ca_cert) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path):
    ca, ca_key, ca_cert = make_ca(tmp_path, "edge-test-ca")
    other_ca, _, _ = make_ca(tmp_path, "someone-elses-ca")
    agent_cert = make_server_cert(tmp_path, "agent", ca_key, ca_cert)
    master_cert = make_server_cert(tmp_path, "master", ca_key, ca_cert)
    return {"ca": ca, "other_ca": other_ca, "agent": agent_cert, "master": master_cert}


class TlsAgent:
    def __init__(
        self,
        tmp_path: Path,
        master_url: str,
        *,
        cert: tuple[Path, Path],
        master_ca: Path,
        verify: Path,
    ):
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.workdir = tmp_path / "tls-agent"
        env = agent_env(
            **AGENT_TEST_ENV,
            AGENT_TLS_CERT_FILE=str(cert[0]),
            AGENT_TLS_KEY_FILE=str(cert[1]),
            AGENT_MASTER_CA_FILE=str(master_ca),
        )
        self.proc = Proc(
            edgectl(
                "agent",
                "--node",
                "tls-edge",
                "--port",
                str(self.port),
                "--workdir",
                str(self.workdir),
                "--master-url",
                master_url,
            ),
            env=env,
            log_path=tmp_path / "tls-agent.log",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if (
                    httpx.get(
                        f"{self.url}/healthz",
                        verify=ssl.create_default_context(cafile=str(verify)),
                        timeout=2,
                    ).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or not self.proc.alive():
                    raise RuntimeError(self.proc.log_text()[-3000:]) from None
                time.sleep(0.1)

    def close(self) -> None:
        self.proc.stop()
        kill_leftovers(self.workdir)


def workload(edge: EdgeTarget, digest: str) -> Workload:
    return Workload(
        deployment_id=1,
        edge=edge,
        ai=AiArtifact(
            id=1, filename="monitoring", version="01", ai_class="01", package_digest=digest
        ),
        command=["python", "main.py"],
        env={"QUIET": "1"},
        generation=1,
    )


async def test_agent_and_master_talk_tls_each_verifying_the_other(tmp_path, pki):
    master = ArtifactServer(tls=pki["master"])
    agent = TlsAgent(tmp_path, master.url, cert=pki["agent"], master_ca=pki["ca"], verify=pki["ca"])
    driver = AgentDriver(key_for=lambda e: AGENT_KEY, ca_file=str(pki["ca"]), timeout_s=10)
    untrusting = AgentDriver(
        key_for=lambda e: AGENT_KEY, ca_file=str(pki["other_ca"]), timeout_s=10
    )
    system_cas = AgentDriver(key_for=lambda e: AGENT_KEY, timeout_s=10)
    try:
        edge = EdgeTarget(name="tls-edge", nid="0x01", agent_url=agent.url)
        digest = master.add(ticker_package("01"))
        await driver.apply(
            workload(edge, digest)
        )  # the agent fetched it over https, verifying the master
        assert master.fetches_of(digest) == 1
        assert [w.state for w in await driver.observe(edge)] in (["pending"], ["running"])
        for wrong in (untrusting, system_cas):  # the master refuses an agent its CA did not sign
            with pytest.raises(DriverUnavailable, match="unreachable"):
                await wrong.observe(edge)
        with pytest.raises(httpx.HTTPError):  # plain http to a TLS agent gets nowhere
            httpx.get(f"http://127.0.0.1:{agent.port}/healthz", timeout=3)
    finally:
        for d in (driver, untrusting, system_cas):
            await d.aclose()
        agent.close()
        master.close()


async def test_the_agent_refuses_a_master_its_ca_did_not_sign(tmp_path, pki):
    master = ArtifactServer(tls=pki["master"])
    agent = TlsAgent(
        tmp_path, master.url, cert=pki["agent"], master_ca=pki["other_ca"], verify=pki["ca"]
    )
    driver = AgentDriver(key_for=lambda e: AGENT_KEY, ca_file=str(pki["ca"]), timeout_s=10)
    try:
        edge = EdgeTarget(name="tls-edge", nid="0x01", agent_url=agent.url)
        digest = master.add(ticker_package("01"))
        with pytest.raises(DriverUnavailable, match="cannot fetch package"):
            await driver.apply(workload(edge, digest))
        assert master.fetches_of(digest) == 0  # the handshake failed before any request
    finally:
        await driver.aclose()
        agent.close()
        master.close()


async def test_the_master_calls_agents_only_at_allowed_addresses():
    driver = AgentDriver(key_for=lambda e: AGENT_KEY, timeout_s=2)
    # Only a documentation range allowed (nothing is sent there): loopback is refused.
    lan_only = AgentDriver(
        key_for=lambda e: AGENT_KEY, timeout_s=2, allowed_networks=parse_networks("192.0.2.0/24")
    )
    try:
        for url in (
            "file:///etc/passwd",
            "gopher://127.0.0.1:70",
            "http://169.254.169.254/latest",
            "http://[::ffff:169.254.169.254]/",
            "http://0.0.0.0:8010",
            "http://user:pw@127.0.0.1:8010",
        ):
            with pytest.raises(DriverError, match="agent_url refused") as info:
                await driver.observe(EdgeTarget(name="e", nid="0x01", agent_url=url))
            assert not isinstance(info.value, DriverUnavailable), url
        with pytest.raises(DriverError, match="not on the networks"):
            await lan_only.observe(
                EdgeTarget(name="e", nid="0x01", agent_url=f"http://127.0.0.1:{free_port()}")
            )
        with pytest.raises(DriverError, match=re.escape("resolves to 127.0.0.1")):
            await lan_only.observe(
                EdgeTarget(name="e", nid="0x01", agent_url=f"http://localhost:{free_port()}")
            )
        # An allowed address that nothing answers: a connection attempt, retried later.
        with pytest.raises(DriverUnavailable):
            await driver.observe(
                EdgeTarget(name="e", nid="0x01", agent_url=f"http://127.0.0.1:{free_port()}")
            )
    finally:
        await driver.aclose()
        await lan_only.aclose()
