"""Pure tests of credentials (docker config.json, environment) and the token cache."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.registry.auth import Credentials, TokenCache, env_key, normalize_host, scope_strings


def test_normalize_host_folds_docker_hub_and_strips_scheme() -> None:
    assert normalize_host("https://index.docker.io/v1/") == "docker.io"
    assert normalize_host("Registry-1.Docker.IO") == "docker.io"
    assert normalize_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert env_key("127.0.0.1:5000") == "MIRROR_AUTH_127_0_0_1_5000"
    assert env_key("docker.io") == "MIRROR_AUTH_DOCKER_IO"


def test_docker_config_auths(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    encoded = base64.b64encode(b"hubuser:hub:secret").decode()
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": encoded},
                    "quay.io": {"username": "q", "password": "qp"},
                    "ghcr.io": {"identitytoken": "skipped"},
                    "bad.example": {"auth": "!!!not base64"},
                }
            }
        )
    )
    creds = Credentials.from_environment({}, docker_config=path)
    hub = creds.get("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hub:secret")
    quay = creds.get("quay.io")
    assert quay is not None and quay.password == "qp"
    assert creds.get("ghcr.io") is None
    assert creds.get("bad.example") is None
    assert "secret" not in repr(creds) and "secret" not in repr(hub)


def test_environment_wins_over_config_and_runtime_add_wins_over_both(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"reg.example": {"username": "a", "password": "b"}}}))
    environ = {"MIRROR_AUTH_REG_EXAMPLE_USERNAME": "envuser", "MIRROR_AUTH_REG_EXAMPLE_PASSWORD": "envpass"}
    creds = Credentials.from_environment(environ, docker_config=path, hosts=["reg.example"])
    login = creds.get("reg.example")
    assert login is not None and login.username == "envuser"
    creds.add("reg.example", "AWS", "token")
    login = creds.get("REG.EXAMPLE")
    assert login is not None and (login.username, login.password) == ("AWS", "token")
    assert login.basic_header() == "Basic " + base64.b64encode(b"AWS:token").decode()


def test_default_docker_config_location(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r.example": {"username": "u", "password": "p"}}}))
    creds = Credentials.from_environment({"DOCKER_CONFIG": str(tmp_path)})
    assert creds.hosts() == frozenset({"r.example"})
    assert Credentials.from_environment({"DOCKER_CONFIG": str(tmp_path / "missing")}).hosts() == frozenset()


def test_unreadable_docker_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"config\.json: cannot read the docker config"):
        Credentials.from_environment({}, docker_config=path)


def test_scope_strings_group_actions_per_repository() -> None:
    scopes = [("b/x", "push"), ("b/x", "pull"), ("a", "pull")]
    assert scope_strings(scopes) == ["repository:a:pull", "repository:b/x:pull,push"]


def test_token_cache_reuses_wider_tokens_until_expiry() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    push = frozenset({("r", "pull"), ("r", "push")})
    cache.put("realm", "svc", push, "T1", 60)
    assert cache.get("realm", "svc", frozenset({("r", "pull")})) == "T1"
    assert cache.get("realm", "svc", frozenset({("other", "pull")})) is None
    assert cache.get("realm", "other-service", push) is None
    now[0] += 49  # a margin before expiry counts as expired
    assert cache.get("realm", "svc", push) == "T1"
    now[0] += 2
    assert cache.get("realm", "svc", push) is None
    cache.put("realm", "svc", push, "T2", 300)
    cache.forget("realm", "svc", "T2")
    assert cache.get("realm", "svc", push) is None
