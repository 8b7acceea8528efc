"""Where alert HTTP may go: public addresses only, unless the operator allows named internal hosts.

A channel URL's host is resolved with :func:`socket.getaddrinfo` (which also reads integer and
octal/hex forms such as ``2130706433`` or ``0x7f000001``, as the OS would) and EVERY address it
yields is checked: one non-public address refuses the whole destination. Non-public means
loopback, private, link-local (169.254.169.254), CGNAT (100.64.0.0/10), unique-local
(fc00::/7), multicast, reserved, unspecified, documentation and benchmarking ranges, and any
IPv6 form that embeds such an IPv4 address (``::ffff:127.0.0.1``, 6to4, NAT64, IPv4-compatible).
``ALERTS_ALLOWED_PRIVATE_HOSTS`` (host names and/or CIDRs) lets named internal hosts through.
The caller connects to the checked addresses themselves (see :mod:`alerts.transports.http`), so a
second DNS answer (rebinding) is never used.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Beyond what ipaddress calls non-global: ranges that must never be reached whatever the Python version says.
_BLOCKED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/96", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
        "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """The destination is not public and not allowed; the message names no address."""


@dataclass(frozen=True)
class Destination:
    """A URL's host and the vetted socket addresses to connect to, in resolver order."""

    host: str
    port: int
    addresses: tuple[tuple[socket.AddressFamily, tuple[Any, ...]], ...]


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """True for a globally routable unicast address (an embedded IPv4 address is checked too)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
        if address.scope_id:
            return False
    if any(address in network for network in _BLOCKED if network.version == address.version):
        return False
    flags = (
        address.is_private,
        address.is_loopback,
        address.is_link_local,
        address.is_multicast,
        address.is_reserved,
        address.is_unspecified,
    )
    return address.is_global and not any(flags)


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def allowlist() -> tuple[frozenset[str], tuple[Network, ...]]:
    """``ALERTS_ALLOWED_PRIVATE_HOSTS`` as (host names, networks); a bare address is one host's network."""
    names: set[str] = set()
    networks: list[Network] = []
    for entry in getattr(settings, "ALERTS_ALLOWED_PRIVATE_HOSTS", []):
        text = str(entry).strip()
        try:
            networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = _normal_host(text)
        if not name or "/" in name or any(c in name for c in " :@[]") or name.replace(".", "").isdigit():
            raise ImproperlyConfigured(
                f"ALERTS_ALLOWED_PRIVATE_HOSTS: {text[:100]!r} is neither a host name nor an address/CIDR"
            )
        names.add(name)
    return frozenset(names), tuple(networks)


def _plain(address: Address) -> Address:
    """IPv4-mapped IPv6 as its IPv4 address, so an allowed 127.0.0.1 also covers ::ffff:127.0.0.1."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def allowed(host: str, address: Address) -> bool:
    """Public, or allowed by ``ALERTS_ALLOWED_PRIVATE_HOSTS`` (by the URL's host name or the address)."""
    if is_public(address):
        return True
    names, networks = allowlist()
    if _normal_host(host) in names:
        return True
    plain = _plain(address)
    return any(plain in network for network in networks if network.version == plain.version)


def _parse(url: str) -> tuple[str, int]:
    try:
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        raise Refused("not an http(s) URL") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise Refused("not an http(s) URL")
    return host, port or (443 if parsed.scheme == "https" else 80)


def resolve(url: str) -> Destination:
    """Resolve ``url``'s host and vet every address. Raises :class:`Refused`, or ``OSError`` if the
    name does not resolve (``socket.gaierror``)."""
    host, port = _parse(url)
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = []
    for family, _, _, _, sockaddr in found:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise Refused("not an internet address")
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and len(sockaddr) > 3 and sockaddr[3]:
            raise Refused("a scoped (link-local) address")
        if not allowed(host, address):
            raise Refused("not a public address")
        if (family, sockaddr) not in addresses:
            addresses.append((family, tuple(sockaddr)))
    if not addresses:
        raise OSError("no address")
    return Destination(host, port, tuple(addresses))


def check(url: str) -> None:
    """Save-time check: raise :class:`Refused` for a URL whose host is (or resolves to) a non-public,
    non-allowed address. A name that does not resolve now passes: every send resolves and checks again."""
    try:
        resolve(url)
    except OSError:
        return
