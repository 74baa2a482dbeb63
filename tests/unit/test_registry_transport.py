"""Pure tests of the transport's decisions: challenges, URL redaction, schemes, allow-list, retry delays."""

from __future__ import annotations

import random
import re
import ssl
import threading
import time

import pytest
import requests
import urllib3.exceptions

from bot.errors import RegistryError
from bot.registry.policy import retry_delay
from bot.registry.progress import LogProgress
from bot.registry.transport import (
    Transport,
    TransportSettings,
    connection_error,
    is_loopback_host,
    parse_challenge,
    redact_url,
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
    progress.add_total(100 * 1024**2)
    now[0] = 5.0
    progress.advance(50 * 1024**2)
    assert stream.text == ""  # not yet time for a line
    now[0] = 10.0
    progress.advance(0)
    assert stream.text == "progress: 0/2 images, 50.0 MiB / 100.0 MiB, 5.0 MiB/s, ETA 10s\n"


def test_no_progress_line_for_a_copy_that_moved_nothing() -> None:
    stream = _Stream()
    progress = LogProgress(stream, 10.0)  # type: ignore[arg-type]
    progress.add_images(1)
    progress.add_total(5000)  # announced, then found at the target: nothing crosses the network
    progress.image_done()
    progress.finish()
    assert stream.text == ""
    progress.advance(5000)
    progress.finish()
    assert stream.text.startswith("progress: 1/1 images, 4.9 KiB / 4.9 KiB, ")


def _tickers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "progress-ticker"}


def test_log_progress_prints_on_a_timer_while_a_transfer_stalls() -> None:
    before = _tickers()
    stream = _Stream()
    progress = LogProgress(stream, 0.05)  # type: ignore[arg-type]
    progress.add_images(1)
    progress.add_total(1024**2)
    progress.advance(256 * 1024)
    time.sleep(0.4)  # no byte moves: the stall must still be visible in the log
    stalled = stream.text.splitlines()
    assert len(stalled) >= 3
    assert all(line.startswith("progress: 0/1 images, 256.0 KiB / 1.0 MiB, ") for line in stalled)
    progress.advance(768 * 1024)
    progress.image_done()
    progress.finish()
    assert re.search(r"progress: 1/1 images, 1\.0 MiB / 1\.0 MiB, [0-9.]+ [KM]iB/s, ETA -\n\Z", stream.text)
    assert _tickers() <= before
    final = stream.text
    time.sleep(0.2)
    assert stream.text == final  # stopped cleanly: nothing after the final line


def test_log_progress_ticker_ends_when_nothing_is_in_flight() -> None:
    before = _tickers()
    stream = _Stream()
    progress = LogProgress(stream, 0.05)  # type: ignore[arg-type]
    progress.add_images(1)
    progress.image_done()  # done without finish(): the ticker must not outlive the work
    time.sleep(0.3)
    assert _tickers() <= before


def test_progress_without_images_never_says_zero_of_zero() -> None:
    stream = _Stream()
    progress = LogProgress(stream, 10.0)  # type: ignore[arg-type]
    progress.finish()  # nothing reached the copier: no meaningless line
    assert stream.text == ""
    progress.add_total(2000)
    progress.advance(1000)
    assert "images" not in progress.line()
    progress.finish()
    assert stream.text.startswith("progress: 1000 B / 2.0 KiB, ")


def _as_requests_raises(cause: BaseException) -> requests.exceptions.SSLError:
    """``cause`` wrapped the way requests and urllib3 hand a TLS failure to the caller."""
    url = "/v2/app/manifests/v1"
    retried = urllib3.exceptions.MaxRetryError(None, url, urllib3.exceptions.SSLError(cause))  # type: ignore[arg-type]
    return requests.exceptions.SSLError(retried)


URL = "https://registry.example.com/v2/app/manifests/v1"


@pytest.mark.parametrize(
    "cause",
    [
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"),
        ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF)"),
        ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed or bad record mac"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=["eof", "zero-return", "bad-record", "reset"],
)
def test_a_tls_error_that_is_not_a_certificate_check_is_temporary(cause: BaseException) -> None:
    # A reset or cut mid-upload over HTTPS arrives as requests' SSLError; it was reported as a failed
    # verification ("pass --ca-bundle") and never retried.
    error = connection_error(_as_requests_raises(cause), "PUT", URL, "pushing the manifest of app:v1")
    assert error.temporary
    assert "cannot reach the registry: SSLError" in str(error)
    assert "--ca-bundle" not in str(error) and "verification" not in str(error)


def test_a_failed_certificate_or_hostname_check_is_permanent_with_the_ca_bundle_hint() -> None:
    unknown_ca = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate"
    )
    wrong_name = requests.exceptions.SSLError("hostname mismatch")
    wrong_name.__context__ = ssl.CertificateError("hostname 'a' doesn't match 'b'")  # an alias of the above
    for exc in (_as_requests_raises(unknown_ca), wrong_name):
        error = connection_error(exc, "GET", URL, None)
        assert not error.temporary
        assert "TLS verification failed" in str(error) and "pass its certificate with --ca-bundle" in str(error)
