"""Shared fixtures: real reference registries on loopback (see tests/harness/registry.py), a fault-injecting
proxy in front of them (tests/harness/fault_proxy.py) and a GitHub fake that accepts commits
(tests/harness/github_fake.py).

Every registry fixture is function-scoped and fresh (a start takes a few tens of milliseconds); use
``registry_factory`` for other combinations, e.g. ``registry_factory(auth="bearer", tls=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.redact import forget_all
from tests.harness import figures
from tests.harness.ecr_standin import EcrStandIn
from tests.harness.fault_proxy import FaultProxy
from tests.harness.github_fake import COMMIT_TOKEN, CommitFake
from tests.harness.registry import RegistryFactory, RegistryServer


@pytest.fixture(autouse=True)
def _no_secrets_between_tests() -> Iterator[None]:
    """Each test starts with no remembered secrets: one test's password must not blank out another's output."""
    forget_all()
    yield
    forget_all()


ECR_USERNAME = "AWS"
ECR_PASSWORD = "ecr-test-password"


@pytest.fixture(scope="session")
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Start registries on demand; every one still running is stopped at the end of the session."""
    factory = RegistryFactory(tmp_path_factory.mktemp("registries"))
    yield factory
    factory.stop_all()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """A fresh anonymous HTTP registry."""
    with registry_factory() as server:
        yield server


@pytest.fixture
def source(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """Another fresh anonymous HTTP registry, the source of a copy (for tests that also use ``registry``)."""
    with registry_factory() as server:
        yield server


@pytest.fixture
def basic_registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """A fresh HTTP registry with htpasswd Basic auth (``user``/``pass``)."""
    with registry_factory(auth="basic") as server:
        yield server


@pytest.fixture
def bearer_registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """A fresh HTTP registry with Bearer token auth; ``.token_server`` issues tokens for ``user``/``pass``.

    Anonymous callers get pull-only tokens, as on Docker Hub.
    """
    with registry_factory(auth="bearer") as server:
        yield server


@pytest.fixture
def tls_registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """An ECR-like data plane: HTTPS (trust ``.ca_bundle``) with Basic auth ``AWS``/``ecr-test-password``."""
    with registry_factory(auth="basic", tls=True, username=ECR_USERNAME, password=ECR_PASSWORD) as server:
        yield server


@pytest.fixture
def proxy_for() -> Iterator[Callable[..., FaultProxy]]:
    """Start a :class:`FaultProxy` in front of a registry (or URL); every one started is stopped afterwards."""
    started: list[FaultProxy] = []

    def make(upstream: RegistryServer | str, **kwargs: object) -> FaultProxy:
        url = upstream if isinstance(upstream, str) else upstream.url
        proxy = FaultProxy(url, **kwargs).start()  # type: ignore[arg-type]
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def commit_github(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommitFake]:
    """A GitHub fake that accepts commits, and the environment of an Actions job pointing at it:
    ``GITHUB_REPOSITORY`` ``octo/mirror`` (add it with ``add_repo``), its token and ``GITHUB_API_URL``."""
    fake = CommitFake()
    fake.start()
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/mirror")
    monkeypatch.setenv("GITHUB_TOKEN", COMMIT_TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
    yield fake
    fake.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the reliability figures the fault, interruption and hostile-input tests gathered."""
    lines = figures.report_lines()
    if not lines:
        return
    terminalreporter.section("reliability figures")
    for line in lines:
        terminalreporter.write_line(line)
    written = figures.write_if_asked()
    if written is not None:
        terminalreporter.write_line(f"written to {written}")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode: the ECR (and IAM, STS) control plane, shared by the session; use fresh names."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS credentials (any values) from the environment, boto3's default chain, and nothing from this
    machine's profiles or instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def ecr_standin(tmp_path_factory: pytest.TempPathFactory, aws_env: None) -> Iterator[EcrStandIn]:
    """A started :class:`~tests.harness.ecr_standin.EcrStandIn`: moto behind an ECR API proxy, the reference
    registry behind a proxy that answers as ECR does (NAME_UNKNOWN, 429 quotas, expired tokens, redirects to
    S3-like storage, mounts, IMMUTABLE tags), with ``aws_env``'s credentials. Knobs: ``throttle``,
    ``blob_mounting``, ``expire_tokens``; ``config()`` gives a ``mirror/config.yml`` mapping, ``ca_bundle``
    the CA for ``--ca-bundle``."""
    with EcrStandIn(tmp_path_factory.mktemp("ecr-standin")) as standin:
        yield standin
