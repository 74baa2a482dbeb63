from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_TARGET_REGISTRY, Config, Rule, load_config, parse_config
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_config_equals_the_built_in_defaults() -> None:
    shipped = load_config(REPO / "mirror" / "config.yml")
    defaults = Config()
    assert shipped.rules == defaults.rules
    assert shipped.target_registry == DEFAULT_TARGET_REGISTRY
    assert shipped.limits == defaults.limits
    assert shipped.daily == defaults.daily


def test_empty_config_means_defaults() -> None:
    assert parse_config(None).rules == Config().rules
    assert parse_config({}).target_registry == DEFAULT_TARGET_REGISTRY


def test_rules_are_normalised() -> None:
    config = parse_config({"rules": [{"source": "Quay.IO/calico/", "target": "/quay/"}]})
    assert config.rules == (Rule("quay.io/calico", "quay"),)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"targt": {}}, "unknown key 'targt'"),
        ({"target": {"registy": "x"}}, "unknown key 'registy' in target"),
        ({"target": "x"}, "target must be a mapping"),
        ({"rules": {"source": "x"}}, "rules must be a list"),
        ({"rules": [{"source": "quay.io"}]}, "rules[0] needs both 'source' and 'target'"),
        ({"limits": {"max_new_lines": -1}}, "limits.max_new_lines must be a whole number"),
        ({"limits": {"max_new_lines": True}}, "limits.max_new_lines must be a whole number"),
        ({"ecr": {"tag_mutability": "sometimes"}}, "ecr.tag_mutability must be one of MUTABLE, IMMUTABLE"),
        ({"ecr": {"scan_on_push": "yes"}}, "ecr.scan_on_push must be true or false"),
        ({"ecr": {"tags": {"team": 1}}}, "ecr.tags must be a mapping of strings to strings"),
        ({"deny": [{"reason": "x"}]}, "deny[0] needs a 'pattern'"),
        ({"transfer": {"upload_chunk_mib": 4}}, "transfer.upload_chunk_mib is 4; give 5 or more"),
        ({"transfer": {"parts": 0}}, "transfer.parts is 0; give 1 or more"),
        ({"transfer": {"part_size": 8}}, "unknown key 'part_size' in transfer"),
        ([1, 2], "the top level must be a mapping"),
        ({"target": {"registry": "::bad"}}, "target.registry '::bad' is not HOST[:PORT][/PATH]"),
        ({"target": {"registry": "mirror"}}, "'mirror' is not a registry host"),
        ({"target": {"prefix": "Team/x"}}, "target.prefix 'Team/x' is not a repository path"),
        (
            {"rules": [{"source": "quay.io/Calico", "target": "q"}]},
            "rules[0].source 'quay.io/Calico' is not HOST[:PORT][/PATH]: uppercase letter 'C'",
        ),
        ({"rules": [{"source": "bad_host.io", "target": "q"}]}, "rules[0].source 'bad_host.io'"),
        ({"rules": [{"source": "quay.io", "target": "Quay"}]}, "rules[0].target 'Quay' is not a repository path"),
        ({"rules": [{"source": "quay.io", "target": "a//b"}]}, "rules[0].target 'a//b' is not a repository path"),
    ],
)
def test_mistakes_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "mirror/config.yml")
    assert message in caught.value.message
    assert caught.value.message.startswith("mirror/config.yml: ")


def test_transfer_settings_come_from_the_config_and_the_command_line() -> None:
    from bot.registry.factory import transfer_settings
    from bot.registry.transfer import MiB

    config = parse_config({"transfer": {"part_size_mib": 4, "parts": 16, "upload_chunk_mib": 5}})
    settings = transfer_settings(config)
    assert (settings.part_size, settings.parts, settings.upload_chunk) == (4 * MiB, 16, 5 * MiB)
    assert settings.buffer_parts == 16  # 64 MiB of parts of 4 MiB
    overridden = transfer_settings(config, part_size_mib=2, parts=3)
    assert (overridden.part_size, overridden.parts) == (2 * MiB, 3)


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_rules_may_name_loopback_and_ipv6_registries() -> None:
    config = parse_config(
        {"rules": [{"source": "[::1]:5000/team", "target": "t"}, {"source": "localhost", "target": "l"}]}
    )
    assert config.rules == (Rule("[::1]:5000/team", "t"), Rule("localhost", "l"))


def test_with_target_registry_refuses_what_is_no_registry() -> None:
    with pytest.raises(ConfigError, match=r"the target registry '::bad' is not HOST\[:PORT\]\[/PATH\]"):
        Config().with_target_registry("::bad")


def test_with_target_registry_splits_a_prefix() -> None:
    config = Config().with_target_registry("registry.example.com/team/mirror/")
    assert (config.target_registry, config.target_prefix) == ("registry.example.com", "team/mirror")
