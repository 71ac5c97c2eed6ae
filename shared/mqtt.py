"""Where an MQTT broker is and how to log in: ``mqtt://[user[:password]@]host[:port]`` or
``mqtts://...`` (TLS, port 8883 by default). Used by the master (publishes update notices) and
the edge agent (subscribes to its own topic), each with its own credentials."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never the password
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"BrokerAddress({scheme}://{user}{self.host}:{self.port})"

    __str__ = __repr__

    def tls_context(
        self,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> ssl.SSLContext | None:
        """The context for mqtts (the broker's certificate verified against ``ca_file`` or the
        system CAs; a client certificate when given); None for plain mqtt."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
        return context


def parse_broker_url(
    url: str, *, username: str | None = None, password: str | None = None
) -> BrokerAddress:
    """``username``/``password`` given separately win over those in the URL. ValueError names
    what is wrong (never the password)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"an MQTT URL starts with mqtt:// or mqtts://, not {parts.scheme!r}://")
    if not parts.hostname:
        raise ValueError("the MQTT URL names no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError("the MQTT URL's port is not a port number (1 to 65535)") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=username or (unquote(parts.username) if parts.username else None),
        password=password or (unquote(parts.password) if parts.password else None),
    )
