"""Pure tests of the transport's decisions: challenges, URL redaction, schemes, allow-list, retry delays."""

from __future__ import annotations

import random

import pytest

from bot.errors import RegistryError
from bot.registry.progress import LogProgress, human_bytes
from bot.registry.transport import (
    Transport,
    TransportSettings,
    is_loopback_host,
    parse_challenge,
    redact_url,
    retry_delay,
)


def test_parse_bearer_challenge_with_scope() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull,push repository:other:pull"'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes() == {("library/nginx", "pull"), ("library/nginx", "push"), ("other", "pull")}


def test_parse_basic_and_unknown_challenges() -> None:
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic" and basic.realm == "Registry Realm"
    assert parse_challenge("Negotiate abc") is None
    assert parse_challenge(None) is None


def test_redact_url_removes_userinfo_and_secret_query_values() -> None:
    url = "https://user:pw@storage.example/blob?X-Amz-Signature=abc&digest=sha256:1&_state=xyz"
    redacted = redact_url(url)
    assert "pw" not in redacted and "abc" not in redacted and "xyz" not in redacted
    assert redacted.startswith("https://storage.example/blob?")
    assert "digest=sha256:1" in redacted


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("[::1]:5000", True),
        ("127.1.2.3", True),
        ("quay.io", False),
        ("10.0.0.1:5000", False),
    ],
)
def test_loopback_detection(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_base_url_schemes_and_overrides() -> None:
    settings = TransportSettings(
        endpoints={"ecr.example": "https://127.0.0.1:5443/"}, insecure_registries=frozenset({"reg.lan:5000"})
    )
    with Transport(settings) as transport:
        assert transport.base_url("docker.io") == "https://registry-1.docker.io"
        assert transport.base_url("index.docker.io") == "https://registry-1.docker.io"
        assert transport.base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
        assert transport.base_url("[::1]:5000") == "http://[::1]:5000"
        assert transport.base_url("reg.lan:5000") == "http://reg.lan:5000"
        assert transport.base_url("quay.io") == "https://quay.io"
        assert transport.base_url("ECR.example") == "https://127.0.0.1:5443"


def test_allow_list_refuses_other_hosts_before_any_request() -> None:
    with Transport(TransportSettings(allowed_hosts=frozenset({"quay.io"}))) as transport:
        with pytest.raises(RegistryError, match="not on the allow-list"):
            transport.request("GET", "169.254.169.254", "/v2/")
        assert sum(transport.counts.values()) == 0


def test_redirects_to_internal_addresses_are_refused_for_public_registries() -> None:
    with Transport(TransportSettings(allowed_hosts=frozenset({"quay.io", "127.0.0.1:5000"}))) as transport:
        transport._follow_allowed("quay.io", "https://cdn.quay.example/blob")  # public storage is fine
        for internal in ("http://169.254.169.254/latest", "http://10.1.2.3/x", "http://localhost:8080/"):
            with pytest.raises(RegistryError, match="internal address"):
                transport._follow_allowed("quay.io", internal)
        with pytest.raises(RegistryError, match="not an HTTP"):
            transport._follow_allowed("quay.io", "file:///etc/passwd")
        # a loopback registry may send us to its loopback token server
        transport._follow_allowed("127.0.0.1:5000", "http://127.0.0.1:6000/token")


def test_retry_delay_honours_retry_after_and_caps() -> None:
    settings = TransportSettings(backoff=1.0, max_backoff=8.0)
    rng = random.Random(1)
    assert retry_delay(1, settings, "3", rng) == 3.0
    assert retry_delay(1, settings, "3600", rng) == 8.0
    assert retry_delay(1, settings, "Wed, 21 Oct 2015 07:28:00 GMT", rng) == 0.0  # a date in the past
    for attempt in range(1, 10):
        delay = retry_delay(attempt, settings, None, rng)
        ceiling = min(8.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_retry_delay_falls_back_to_backoff_on_a_malformed_retry_after() -> None:
    # A registry's bad header must not end the run with a traceback: the usual backoff applies.
    settings = TransportSettings(backoff=1.0, max_backoff=8.0)
    rng = random.Random(1)
    for value in ("soon", "1.5", "-1", "Wed, 99 Foo 2015"):
        assert 0.5 <= retry_delay(1, settings, value, rng) <= 1.0
    # A date without a zone ("-0000") is UTC, not the machine's local time.
    assert retry_delay(1, settings, "Wed, 21 Oct 2015 07:28:00 -0000", rng) == 0.0


class _Stream:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_log_progress_prints_rate_and_eta() -> None:
    now = [0.0]
    stream = _Stream()
    progress = LogProgress(stream, 10.0, clock=lambda: now[0])  # type: ignore[arg-type]
    progress.add_images(2)
    progress.add_total(100_000_000)
    now[0] = 5.0
    progress.advance(50_000_000)
    assert stream.text == ""  # not yet time for a line
    now[0] = 10.0
    progress.advance(0)
    assert stream.text == "progress: 0/2 images, 50.0 MB / 100.0 MB, 5.0 MB/s, ETA 10s\n"
    assert human_bytes(999) == "999 B" and human_bytes(1_500_000_000) == "1.5 GB"
