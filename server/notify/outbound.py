"""Where a webhook may send: hosts on the public internet, unless the operator allow-lists one.

A store's URL is checked when it is registered (422 naming `url`) and again before every
delivery, and the request then goes to the very address that was checked, the name kept in
the Host header and for TLS (SNI and certificate check). Checking at registration alone would
not do: the name's DNS may answer a private address later (DNS rebinding), and re-checking
just before connecting would still let the connection resolve the name a second time.
"""

import ipaddress
import socket
from dataclasses import dataclass

import httpx

from server.domain.errors import Invalid
from server.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedDestination(Invalid):
    """The URL points where webhooks may not go. One message for every reason a host is
    refused, so that registering URLs cannot tell which internal names exist."""

    def __init__(self, message: str) -> None:
        super().__init__("url", message)


def _not_public() -> RefusedDestination:
    return RefusedDestination(
        "must name a host on the public internet (this one does not resolve, or resolves to "
        "a local, private or reserved address); the lab can allow-list a receiver of its own"
    )


@dataclass(frozen=True)
class OutboundPolicy:
    allow_http: bool
    hosts: frozenset[str]  # names allowed whatever they resolve to
    networks: tuple[IPNetwork, ...]  # non-public addresses allowed

    @classmethod
    def from_settings(cls, settings: Settings) -> "OutboundPolicy":
        hosts, networks = set(), []
        for entry in settings.webhook_allowed_hosts:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(_normal_name(entry))
        return cls(settings.webhook_allow_http, frozenset(hosts), tuple(networks))

    def permits(self, address: IPAddress) -> bool:
        address = _unmapped(address)
        return is_public(address) or any(address in network for network in self.networks)


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address to connect to for it."""

    url: httpx.URL
    address: IPAddress

    @property
    def pinned_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    @property
    def headers(self) -> dict[str, str]:
        # A client pools connections by address: without "close", another store's name on
        # the same address could be sent over this connection, whose TLS checked this name.
        return {"Host": self.url.netloc.decode("ascii"), "Connection": "close"}

    @property
    def extensions(self) -> dict[str, str]:
        """TLS speaks to and verifies the name, not the address it was pinned to."""
        if self.url.scheme != "https" or _literal(self.url.raw_host.decode("ascii")):
            return {}
        return {"sni_hostname": self.url.raw_host.decode("ascii")}


def _normal_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _literal(host: str) -> IPAddress | None:
    try:
        return _unmapped(ipaddress.ip_address(host))
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    """`::ffff:127.0.0.1` reaches 127.0.0.1: judge (and connect to) the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """A global unicast address: not loopback, private, link-local, unique-local, CGNAT,
    unspecified, multicast or reserved (nor a 6to4 address wrapping one of those)."""
    address = _unmapped(address)
    wrapped = address.sixtofour if isinstance(address, ipaddress.IPv6Address) else None
    if wrapped is not None and not is_public(wrapped):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the name has (the one place that asks DNS; tests replace it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An IPv6 link-local answer carries its interface ("fe80::1%eth0").
    found = (ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    return list(dict.fromkeys(_unmapped(address) for address in found))


def check(url: str, policy: OutboundPolicy) -> Destination:
    """Resolves the URL's host and gives the address to send to, or raises
    RefusedDestination. Slow (DNS): call it outside any database transaction."""
    try:
        parsed = httpx.URL(url)
        host = _normal_name(parsed.raw_host.decode("ascii"))
    except (httpx.InvalidURL, UnicodeError) as error:
        raise RefusedDestination("is not a valid URL") from error
    if parsed.scheme != "https" and not (parsed.scheme == "http" and policy.allow_http):
        allowed = "http or https" if policy.allow_http else "https"
        raise RefusedDestination(f"must use {allowed}")
    if not host:
        raise _not_public()
    named_allowed = host in policy.hosts
    if (host == "localhost" or host.endswith(".localhost")) and not named_allowed:
        raise _not_public()  # RFC 6761: always this machine, whatever a resolver says
    try:
        addresses = resolve(host, parsed.port or DEFAULT_PORTS[parsed.scheme])
    except (OSError, UnicodeError, ValueError) as error:
        raise _not_public() from error
    # Every address: a client may connect to any of them, so one public address among
    # private ones must not carry the others through.
    if not addresses or not (named_allowed or all(map(policy.permits, addresses))):
        raise _not_public()
    return Destination(parsed.copy_with(host=host), addresses[0])
