"""The request policy (bot/registry/policy.py): budgets, the adaptive pace, transfer slots, and the config."""

from __future__ import annotations

import random
import threading

import pytest

from bot.config import parse_config
from bot.errors import ConfigError
from bot.registry.factory import host_policies
from bot.registry.policy import HostPolicy, HostSettings, RequestPolicy, Tries, operation
from bot.targets.ecr import request_defaults

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_map_to_operations() -> None:
    assert operation("HEAD", "/v2/a/b/manifests/1") == "manifest-read"
    assert operation("GET", "/v2/a/manifests/sha256:1") == "manifest-read"
    assert operation("PUT", "/v2/a/manifests/1") == "manifest-write"
    assert operation("HEAD", "/v2/a/blobs/sha256:1") == "blob-check"
    assert operation("GET", "/v2/a/blobs/sha256:1") == "blob-read"
    assert operation("POST", "/v2/a/blobs/uploads/") == "upload-start"
    assert operation("PATCH", "https://r.example/v2/a/blobs/uploads/u?state=x") == "upload-part"
    assert operation("PUT", "/v2/a/blobs/uploads/u?digest=sha256:1") == "upload-complete"
    assert operation("GET", "/v2/a/tags/list") == "tag-list"
    assert operation("GET", "/v2/") == "other"


def test_throttling_has_its_own_longer_budget() -> None:
    tries = Tries(HostSettings(max_attempts=3, throttle_attempts=6, backoff=0.1, max_backoff=1.0), random.Random(1))
    delays = [tries.retry(throttled=True) for _ in range(5)]
    assert all(delay is not None and 0 < delay <= 1.0 for delay in delays)
    assert tries.retry() is not None and tries.retry() is not None  # failures count apart
    assert tries.retry() is None  # the third failure ends it
    assert tries.retry(throttled=True) is None  # and the sixth 429
    assert tries.count == 9
    assert Tries(HostSettings(), random.Random(1)).retry(throttled=True, retry_after="7") == 7.0


def test_a_quota_slows_an_operation_down_and_success_speeds_it_up_again() -> None:
    clock = Clock()
    policy = HostPolicy(ECR, HostSettings(), clock=clock)
    assert policy.rate("blob-check") is None  # unlimited until throttled
    for _ in range(4):  # a burst: 4 requests 10 ms apart, the last one refused
        sent = clock.now
        assert policy.wait_for("blob-check") == 0.0
        clock.now += 0.01
    policy.record("blob-check", 429, sent_at=sent)
    first = policy.rate("blob-check")
    assert first is not None and first == pytest.approx(70.0)  # 70 % of the burst's 100/s
    policy.record("blob-check", 429, sent_at=sent)  # sent before the cut: no new information
    assert policy.rate("blob-check") == first
    policy.record("blob-check", 429, sent_at=clock.now)
    second = policy.rate("blob-check")
    assert second is not None and second == pytest.approx(first * 0.7)
    # Paced: requests are now spaced evenly at the new rate.
    waits = [policy.wait_for("blob-check") for _ in range(3)]
    assert waits[1] - waits[0] == pytest.approx(1 / second) and waits[2] > waits[1]
    # Other operations keep their own pace; a 429 that says when to come back is that wait, not a cut.
    assert policy.rate("manifest-write") is None
    policy.record("manifest-write", 429, retry_after="3", sent_at=clock.now)
    assert policy.rate("manifest-write") is None
    for _ in range(200):
        policy.record("blob-check", 200)
    assert (policy.rate("blob-check") or 0) > second * 1.3  # added back while requests succeed
    assert policy.throttled == 4


def test_a_ceiling_holds_and_the_rate_never_falls_below_the_floor() -> None:
    clock = Clock()
    policy = HostPolicy(ECR, HostSettings(rates={"manifest-write": 10.0}), clock=clock)
    assert policy.rate("manifest-write") == 10.0
    for _ in range(100):
        clock.now += 1
        policy.record("manifest-write", 429, sent_at=clock.now)
    assert policy.rate("manifest-write") == 0.5
    for _ in range(10_000):
        policy.record("manifest-write", 201)
    assert policy.rate("manifest-write") == 10.0
    fixed = HostPolicy(ECR, HostSettings(rates={"manifest-write": 10.0}, adaptive=False), clock=clock)
    fixed.record("manifest-write", 429, sent_at=clock.now)
    assert fixed.rate("manifest-write") == 10.0


def test_transfer_slots_shrink_on_trouble_and_grow_back() -> None:
    policy = HostPolicy(ECR, HostSettings(streams=4))
    inside = threading.Event()

    def fifth() -> None:
        with policy.slot():
            inside.set()

    with policy.slot(), policy.slot(), policy.slot(), policy.slot():
        waiting = threading.Thread(target=fifth)
        waiting.start()
        assert not inside.wait(0.1)  # the fifth waits
    waiting.join(2)
    assert inside.is_set()
    policy.record("upload-part", 503)
    assert policy.streams == 2
    for _ in range(2 + 3):
        policy.record("upload-part", 202)
    assert policy.streams == 4
    assert HostPolicy("quay.io", HostSettings()).streams is None


def test_ecr_hosts_start_from_the_documented_quotas_and_the_config_overrides() -> None:
    config = parse_config(
        {
            "target": {"registry": ECR},
            "request_policy": {
                "default": {"max_attempts": 3},
                "hosts": {"Quay.io": {"rates": {"manifest-read": 5}, "streams": 2, "throttle_attempts": 30}},
            },
        }
    )
    hosts = [ECR, "quay.io", "ghcr.io"]
    assert set(request_defaults(hosts)) == {ECR}
    policies = host_policies(config, hosts, request_defaults(hosts))
    assert policies[ECR].rates["manifest-write"] == 10.0  # PutImage
    assert policies[ECR].max_attempts == 3
    assert policies["quay.io"] == HostSettings(
        max_attempts=3, throttle_attempts=30, rates={"manifest-read": 5.0}, streams=2
    )
    assert policies["ghcr.io"] == HostSettings(max_attempts=3)
    assert RequestPolicy(HostSettings(), policies).host("QUAY.IO").settings.streams == 2


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"default": {"max_attempts": 0}}, "request_policy.default.max_attempts must be a whole number, 1 or more"),
        ({"hosts": {"q.io": {"rates": {"put": 1}}}}, "request_policy.hosts.q.io.rates: unknown operation 'put'"),
        ({"hosts": {"q.io": {"rates": {"tag-list": 0}}}}, "rates.tag-list must be a number above zero"),
        ({"default": {"backoff": "1s"}}, "request_policy.default.backoff must be a number above zero"),
        ({"default": {"adaptive": "yes"}}, "request_policy.default.adaptive must be true or false"),
        ({"default": {"retries": 3}}, "unknown key 'retries' in request_policy.default"),
    ],
)
def test_bad_policy_settings_name_the_key(policy: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_config({"request_policy": policy}, "mirror/config.yml")
