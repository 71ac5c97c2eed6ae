"""Where the master may send an agent call: http(s) only, to hosts on the allowed networks.

Setup checks an ``agent_url`` when it is stored (scheme, no credentials, an IP literal on the
allowed networks); the master checks again before every call, resolving a host name and
requiring every address it resolves to be allowed (EDGE_AGENT_ALLOWED_NETWORKS). Link-local
addresses (169.254.0.0/16 with the cloud metadata service, fe80::/10), multicast, broadcast and
the unspecified address are refused whatever the setting says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# A CIDR network, or a class of addresses by name: "loopback" or "private" (the private and
# unique-local ranges, as Python's ``ipaddress`` knows them).
Network = ipaddress.IPv4Network | ipaddress.IPv6Network | str
ADDRESS_CLASSES = ("loopback", "private")


def parse_networks(text: str) -> list[Network]:
    out: list[Network] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        out.append(part if part in ADDRESS_CLASSES else ipaddress.ip_network(part, strict=False))
    return out


def _in(address: Address, network: Network) -> bool:
    if network == "loopback":
        return address.is_loopback
    if network == "private":
        return address.is_private
    return not isinstance(network, str) and address in network


def address_allowed(address: Address, networks: list[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if (
        address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    ):
        return False
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    ):
        return False
    return any(_in(address, network) for network in networks)


def check_agent_url(url: str, networks: list[Network]) -> str:
    """The host of a well-formed agent URL, or ValueError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry credentials (the master authenticates with the agent's key)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return parts.hostname  # a name: resolved and checked at call time
    if not address_allowed(literal, networks):
        raise ValueError(
            f"{literal} is not on the networks agents may use (EDGE_AGENT_ALLOWED_NETWORKS)"
        )
    return parts.hostname


async def resolve_and_check(url: str, networks: list[Network]) -> None:
    """Before a call: every address the host resolves to must be allowed."""
    host = check_agent_url(url, networks)
    port = urlsplit(url).port or 0
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"host {host!r} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address_allowed(address, networks):
            raise ValueError(f"{host} resolves to {address}, not on the networks agents may use")
