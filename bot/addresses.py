"""Is a host one of the public internet's, or an internal one (loopback, private, link-local...)?

Both the path rules (a reference may not name an internal registry unless a rule does) and the transport (a
registry may not send us to an internal address by a redirect or a token realm) ask this. IPv4 is read the way
resolvers read it, so ``127.1``, ``2130706433`` and ``0x7f.0.0.1`` are loopback too; :func:`resolved_internal`
also looks a name up, so a public-looking name that resolves inside is caught as well.
"""

from __future__ import annotations

import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def hostname(host: str) -> str:
    """The name or address of ``host`` (``name``, ``name:port``, ``[v6]`` or ``[v6]:port``), lower case."""
    host = host.lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _literal(name: str) -> Address | None:
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))  # no lookup: only numeric forms parse
    except (OSError, ValueError):
        return None


def address_kind(address: Address) -> str | None:
    """What kind of non-public address this is, else ``None``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, test in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("an unspecified address", address.is_unspecified),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved or address.is_multicast),
        ("a non-public address", not address.is_global),
    ):
        if test:
            return kind
    return None


def internal_kind(host: str) -> str | None:
    """What kind of internal host ``host`` names by its spelling alone (no lookup), else ``None``."""
    name = hostname(host).rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "this machine (localhost)"
    if name.endswith((".local", ".internal")):
        return "a local network name"
    address = _literal(name)
    return address_kind(address) if address is not None else None


def resolved_internal(host: str) -> str | None:
    """:func:`internal_kind`, or, for a name, the kind of the first internal address it resolves to.

    A name that does not resolve is not judged here: the request to it fails on its own.
    """
    kind = internal_kind(host)
    name = hostname(host)
    if kind is not None or _literal(name) is not None:
        return kind
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        found = _literal(str(info[4][0]))
        if found is not None and (found_kind := address_kind(found)) is not None:
            return f"{found_kind} ({found})"
    return None


def public_address(name: str, port: int) -> tuple[str | None, str | None]:
    """Resolve ``name`` once: ``(address, None)`` with the first address when every address is public, else
    ``(None, kind)`` naming the first internal one. The caller connects to that very address, so a name that
    answers a check with a public address and the connection with an internal one (DNS rebinding) cannot
    slip through. Raises ``OSError`` when the name does not resolve."""
    literal = _literal(name)
    if literal is not None:
        return (None, kind) if (kind := address_kind(literal)) is not None else (str(literal), None)
    infos = socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP)
    addresses = [found for info in infos if (found := _literal(str(info[4][0]))) is not None]
    for address in addresses:
        if (kind := address_kind(address)) is not None:
            return None, f"{kind} ({address})"
    if not addresses:
        raise OSError(f"{name} resolves to no address")
    return str(addresses[0]), None
