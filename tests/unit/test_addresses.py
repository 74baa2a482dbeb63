"""Internal addresses in every spelling, and the transport refusing to be sent to them by a public registry."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from bot.addresses import internal_kind, resolved_internal
from bot.errors import RegistryError
from bot.registry.transport import Transport, TransportSettings


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.1", "a loopback address"),
        ("2130706433", "a loopback address"),
        ("0x7f000001", "a loopback address"),
        ("0x7f.0.0.1", "a loopback address"),
        ("0177.0.0.1:8080", "a loopback address"),
        ("0", "an unspecified address"),
        ("[::1]:5000", "a loopback address"),
        ("[::ffff:169.254.169.254]", "a link-local address"),
        ("[fe80::1%25eth0]", "a link-local address"),
        ("169.254.169.254", "a link-local address"),
        ("10.0.0.1:5000", "a private address"),
        ("100.64.0.1", "a non-public address"),
        ("LOCALHOST:80", "this machine (localhost)"),
        ("registry.localhost", "this machine (localhost)"),
        ("metadata.google.internal", "a local network name"),
        ("printer.local.", "a local network name"),
    ],
)
def test_every_spelling_of_an_internal_host_is_named(host: str, kind: str) -> None:
    assert internal_kind(host) == kind


@pytest.mark.parametrize("host", ["quay.io", "registry-1.docker.io:443", "8.8.8.8", "[2606:4700::1111]", "docker.io"])
def test_public_hosts_are_not_internal(host: str) -> None:
    assert internal_kind(host) is None


def fake_resolver(table: dict[str, str]) -> Any:
    def getaddrinfo(name: str, *_args: object, **_kwargs: object) -> list[tuple[Any, ...]]:
        if name not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[name], 0))]

    return getaddrinfo


def test_a_name_that_resolves_inside_is_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver({"cdn.evil.example": "10.9.8.7", "cdn.ok": "8.8.4.4"}))
    assert resolved_internal("cdn.evil.example:443") == "a private address (10.9.8.7)"
    assert resolved_internal("cdn.ok") is None
    assert resolved_internal("does-not-resolve.example") is None  # the request fails on its own


def test_a_public_registry_cannot_send_us_inside_in_any_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver({"storage.evil.example": "169.254.169.254"}))
    with Transport(TransportSettings(allowed_hosts=frozenset({"quay.io"}))) as transport:
        for url in (
            "http://127.1:8080/latest",
            "http://2130706433/latest",
            "http://0x7f000001/latest",
            "http://0/latest",
            "http://[::ffff:127.0.0.1]/latest",
            "http://100.64.0.1/x",
            "https://storage.evil.example/blob",
        ):
            with pytest.raises(RegistryError, match="refused") as caught:
                transport._follow_allowed("quay.io", url)
            assert "address" in str(caught.value)
        assert sum(transport.counts.values()) == 0
