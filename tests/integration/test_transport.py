"""The transport against the real reference registry: auth schemes, token caching, retries, redirects,
TLS endpoints and structured errors.

Faults a healthy registry never produces (429, 503, redirects to blob storage, relative ``Location``
headers) come from :class:`FaultProxy` (tests/harness/fault_proxy.py), a small forwarding proxy in front of a
real registry, started by the ``proxy_for`` fixture.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import requests

from bot.errors import AuthError, NotFound, RegistryError
from bot.registry.auth import Credentials, TokenCache
from bot.registry.client import RegistryClient
from bot.registry.transport import Transport, TransportSettings, connection_error
from tests.harness.fault_proxy import FaultProxy
from tests.harness.images import push_image
from tests.harness.registry import RegistryFactory, RegistryServer


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _transport(**kwargs: object) -> Transport:
    sleeps: list[float] = []
    credentials = kwargs.pop("credentials", None)
    transport = Transport(
        TransportSettings(**kwargs),  # type: ignore[arg-type]
        credentials,  # type: ignore[arg-type]
        sleep=sleeps.append,
    )
    transport.sleeps = sleeps  # type: ignore[attr-defined]
    return transport


def test_anonymous_registry_needs_no_auth(registry: RegistryServer) -> None:
    image = push_image(registry, "library/app", "v1")
    with _transport() as transport:
        path = "/v2/library/app/tags/list"
        response = transport.request("GET", registry.host, path, scopes=[("library/app", "pull")])
        assert response.json() == {"name": "library/app", "tags": ["v1"]}
        assert transport.ping(registry.host) is None
    assert image.digest


def test_basic_auth_with_and_without_credentials(basic_registry: RegistryServer) -> None:
    push_image(basic_registry, "app", "v1")
    credentials = Credentials()
    credentials.add(basic_registry.host, "user", "pass")
    with RegistryClient(_transport(credentials=credentials)) as client:
        assert client.list_tags(basic_registry.host, "app") == ["v1"]
    with RegistryClient(_transport()) as client, pytest.raises(AuthError, match="MIRROR_AUTH_127_0_0_1_"):
        client.list_tags(basic_registry.host, "app")
    wrong = Credentials()
    wrong.add(basic_registry.host, "user", "wrong")
    with RegistryClient(_transport(credentials=wrong)) as client, pytest.raises(AuthError) as caught:
        client.list_tags(basic_registry.host, "app")
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


def test_bearer_tokens_are_scoped_per_repository_and_cached(bearer_registry: RegistryServer) -> None:
    push_image(bearer_registry, "one", "v1")
    push_image(bearer_registry, "two", "v1")
    tokens = bearer_registry.token_server
    assert tokens is not None
    before = tokens.tokens_issued
    with RegistryClient(_transport()) as client:  # anonymous pull, as on Docker Hub
        for _ in range(5):
            assert client.head_manifest(bearer_registry.host, "one", "v1") is not None
        assert client.head_manifest(bearer_registry.host, "two", "v1") is not None
        assert tokens.tokens_issued - before == 2  # one per repository, reused until expiry
        scopes = [r.scopes for r in tokens.requests[-2:]]
        assert scopes == [("repository:one:pull",), ("repository:two:pull",)]
        # anonymous callers may not push: the token server grants pull only, the registry refuses
        with pytest.raises(AuthError):
            client.put_manifest(bearer_registry.host, "one", "v2", b"{}", "application/vnd.oci.image.manifest.v1+json")


def test_bearer_credentials_push_and_token_renewal(bearer_registry: RegistryServer) -> None:
    image = push_image(bearer_registry, "app", "v1")
    tokens = bearer_registry.token_server
    assert tokens is not None
    now = [0.0]
    credentials = Credentials()
    credentials.add(bearer_registry.host, "user", "pass")
    transport = Transport(TransportSettings(), credentials, tokens=TokenCache(clock=lambda: now[0]))
    with RegistryClient(transport) as client:
        manifest = client.get_manifest(bearer_registry.host, "app", "v1")
        digest = client.put_manifest(bearer_registry.host, "app", "v2", manifest.body, manifest.media_type)
        assert digest == image.digest
        issued = tokens.tokens_issued
        client.head_manifest(bearer_registry.host, "app", "v2")  # the pull,push token covers pull
        assert tokens.tokens_issued == issued
        now[0] += 3600  # past expiry: a new token is minted, with the credentials
        client.head_manifest(bearer_registry.host, "app", "v2")
        assert tokens.tokens_issued == issued + 1
        assert tokens.requests[-1].username == "user"


def test_bad_bearer_credentials_fail_with_a_hint(bearer_registry: RegistryServer) -> None:
    credentials = Credentials()
    credentials.add(bearer_registry.host, "user", "nope")
    with RegistryClient(_transport(credentials=credentials)) as client, pytest.raises(AuthError) as caught:
        client.head_manifest(bearer_registry.host, "app", "v1")
    assert "credentials for 127.0.0.1" in str(caught.value)
    assert "nope" not in str(caught.value)


def test_retries_on_429_and_5xx_honouring_retry_after(
    registry: RegistryServer, proxy_for: Callable[..., FaultProxy]
) -> None:
    push_image(registry, "app", "v1")
    proxy = proxy_for(
        registry,
        faults=[
            ("HEAD", "/manifests/v1", 429, {"Retry-After": "7"}),
            ("HEAD", "/manifests/v1", 503, {}),
            ("HEAD", "/manifests/v1", 502, {}),
        ],
    )
    transport = _transport(backoff=0.25, max_backoff=10.0)
    with RegistryClient(transport) as client:
        assert client.head_manifest(proxy.host, "app", "v1") is not None
    sleeps = transport.sleeps  # type: ignore[attr-defined]
    assert sleeps[0] == 7.0
    assert len(sleeps) == 3 and all(0 < s <= 1.0 for s in sleeps[1:])
    assert proxy.methods(lambda s: "/manifests/" in s.path) == ["HEAD"] * 4


def test_retries_are_bounded_and_other_errors_are_not_retried(
    registry: RegistryServer, proxy_for: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_for(registry, faults=[("GET", "/tags/list", 503, {})] * 3 + [("HEAD", "/manifests/x", 400, {})])
    transport = _transport(max_attempts=3)
    with RegistryClient(transport) as client:
        with pytest.raises(RegistryError) as caught:
            client.list_tags(proxy.host, "app")
        # Used up: no longer temporary, so a caller does not multiply the transport's tries with its own.
        assert caught.value.status == 503 and not caught.value.temporary
        assert str(caught.value).endswith("(gave up after 3 tries)")
        with pytest.raises(RegistryError) as bad:
            client.head_manifest(proxy.host, "app", "x")
        assert bad.value.status == 400 and not bad.value.temporary
    assert len(transport.sleeps) == 2  # type: ignore[attr-defined]
    assert proxy.methods(lambda s: "/manifests/x" in s.path) == ["HEAD"]


def test_connection_errors_are_retried_then_reported(registry: RegistryServer) -> None:
    host = registry.host
    registry.stop()
    transport = _transport(max_attempts=3)
    with RegistryClient(transport) as client, pytest.raises(RegistryError, match="cannot reach") as caught:
        client.head_manifest(host, "app", "v1")
    assert not caught.value.temporary and str(caught.value).endswith("(gave up after 3 tries)")
    assert len(transport.sleeps) == 2  # type: ignore[attr-defined]


def test_errors_carry_code_status_method_and_redacted_url(registry: RegistryServer) -> None:
    with RegistryClient(_transport()) as client, pytest.raises(NotFound) as caught:
        client.get_manifest(registry.host, "missing/app", "v1")
    error = caught.value
    assert (error.status, error.method, error.code) == (404, "GET", "MANIFEST_UNKNOWN")
    assert error.url == f"http://{registry.host}/v2/missing/app/manifests/v1"
    assert "missing/app" in str(error)


def test_blob_redirect_to_storage_drops_the_authorization_header(
    basic_registry: RegistryServer, proxy_for: Callable[..., FaultProxy]
) -> None:
    image = push_image(basic_registry, "app", "v1", kind="oci-manifest")
    # The "CDN": another origin, which authorises by itself (like a signed URL).
    storage = proxy_for(basic_registry, upstream_headers={"Authorization": _basic("user", "pass")})
    front = proxy_for(basic_registry, redirect_blobs=storage)
    credentials = Credentials()
    credentials.add(front.host, "user", "pass")
    layer = max(image.blobs, key=lambda b: b.size)
    with (
        RegistryClient(_transport(credentials=credentials)) as client,
        client.get_blob(front.host, "app", layer.digest, layer.size) as stream,
    ):
        data = b"".join(stream)
    assert len(data) == layer.size
    assert any("Authorization" in s.headers for s in front.seen if "/blobs/" in s.path)
    storage_requests = [s for s in storage.seen if "/blobs/" in s.path]
    assert storage_requests and all("Authorization" not in s.headers for s in storage_requests)


def test_tls_endpoint_override_with_ca_bundle(tls_registry: RegistryServer) -> None:
    image = push_image(tls_registry, "team/app", "v1")
    credentials = Credentials()
    credentials.add("123456789012.dkr.ecr.test-1.amazonaws.com", "AWS", "ecr-test-password")
    settings = TransportSettings(
        endpoints={"123456789012.dkr.ecr.test-1.amazonaws.com": tls_registry.url},
        verify=tls_registry.ca_bundle or True,
        allowed_hosts=frozenset({"123456789012.dkr.ecr.test-1.amazonaws.com"}),
    )
    with RegistryClient(Transport(settings, credentials)) as client:
        found = client.head_manifest("123456789012.dkr.ecr.test-1.amazonaws.com", "team/app", "v1")
    assert found is not None and found.digest == image.digest
    untrusted = Transport(TransportSettings(endpoints={"x.example": tls_registry.url}), credentials)
    with (
        RegistryClient(untrusted) as client,
        pytest.raises(RegistryError, match=r"TLS verification failed.*--ca-bundle") as caught,
    ):
        client.head_manifest("x.example", "team/app", "v1")  # the system CAs do not trust the test CA
    assert not caught.value.temporary


def test_head_headers_are_exposed(registry_factory: RegistryFactory) -> None:
    server = registry_factory()
    image = push_image(server, "app", "v1")
    with RegistryClient(_transport()) as client:
        found = client.head_manifest(server.host, "app", "v1")
    assert found is not None
    assert found.headers["Docker-Content-Digest"] == image.digest
    assert found.media_type == image.media_type
    assert found.size == len(image.manifest)


def test_invalid_requests_fail_at_once_without_retries(registry: RegistryServer) -> None:
    # A malformed endpoint or header is a configuration or programming error: retrying cannot fix it.
    transport = _transport(endpoints={"broken.example": "http://127.0.0.1:notaport"})
    with pytest.raises(RegistryError, match="the request is invalid") as caught:
        transport.request("GET", "broken.example", "/v2/app/tags/list?token=secret")
    assert not caught.value.temporary
    assert "InvalidURL" in str(caught.value)
    with pytest.raises(RegistryError, match=r"the request is invalid.*InvalidHeader") as header:
        transport.request("GET", registry.host, "/v2/", headers={"X-Trace": "a\nb"})
    assert not header.value.temporary
    assert transport.sleeps == []  # type: ignore[attr-defined]
    assert sum(transport.counts.values()) == 1  # the ping of the real registry, nothing else
    transport.close()


def test_a_body_that_breaks_off_and_a_timeout_are_retried() -> None:
    url = "http://127.0.0.1:5000/v2/app/blobs/sha256:0?X-Signature=abc"
    for exc in (
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("Connection reset by peer"),
    ):
        assert connection_error(exc, "GET", url, None).temporary, exc
    for bad in (
        requests.exceptions.MissingSchema(f"Invalid URL {url!r}: No scheme supplied"),
        requests.exceptions.InvalidSchema("No connection adapters were found"),
        requests.exceptions.InvalidURL("Failed to parse"),
        requests.exceptions.InvalidHeader("Invalid leading whitespace"),
        requests.exceptions.TooManyRedirects("Exceeded 30 redirects"),
    ):
        error = connection_error(bad, "GET", url, None)
        assert not error.temporary, bad
        assert "abc" not in str(error)  # the signed URL stays redacted
