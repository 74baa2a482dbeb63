"""Shared fixtures: real reference registries on loopback (see tests/harness/registry.py).

Every registry fixture is function-scoped and fresh (a start takes a few tens of milliseconds); use
``registry_factory`` for other combinations, e.g. ``registry_factory(auth="bearer", tls=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.registry import RegistryFactory, RegistryServer

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
    server = registry_factory()
    yield server
    server.stop()


@pytest.fixture
def basic_registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """A fresh HTTP registry with htpasswd Basic auth (``user``/``pass``)."""
    server = registry_factory(auth="basic")
    yield server
    server.stop()


@pytest.fixture
def bearer_registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """A fresh HTTP registry with Bearer token auth; ``.token_server`` issues tokens for ``user``/``pass``.

    Anonymous callers get pull-only tokens, as on Docker Hub.
    """
    server = registry_factory(auth="bearer")
    yield server
    server.stop()


@pytest.fixture
def tls_registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    """An ECR-like data plane: HTTPS (trust ``.ca_bundle``) with Basic auth ``AWS``/``ecr-test-password``."""
    server = registry_factory(auth="basic", tls=True, username=ECR_USERNAME, password=ECR_PASSWORD)
    yield server
    server.stop()
