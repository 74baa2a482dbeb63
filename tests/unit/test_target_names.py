"""Target naming rules, checked before merge: ``check``, ``validate-pr`` and ``map`` refuse a reference whose
mirror path the target cannot hold, at file:line:col, naming the rule, and the PR comment says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.checks import check_lists
from bot.cli import main
from bot.config import Config, parse_config
from bot.lists import ListKind, MirroredIndex, parse_list
from bot.report.comment import render_comment
from bot.rules import Target
from bot.targets import kind_for, mapper_for
from bot.targets.ecr import EcrTarget, parse_registry_host, repository_problem
from bot.targets.oci import OciTarget
from bot.validate import ListChange, validate_changes
from tests.harness.fake_upstream import RecordingUpstream, facts

REQUIRED = "mirror/required-images.txt"
LONG = "a" * 238  # under gcr/google_containers/ (22 characters) the repository has 260 characters
ECR_PATTERN = "ECR repository name pattern"


@pytest.mark.parametrize(
    ("repository", "rule"),
    [
        ("dockerhub/someorg/my__app", ECR_PATTERN),
        ("dockerhub/someorg/my---app", ECR_PATTERN),
        ("dockerhub/someorg/my-.app", ECR_PATTERN),
        (f"gcr/google_containers/{LONG}", "ECR repository name length (2 to 256 characters)"),
        ("a", "ECR repository name length (2 to 256 characters)"),
    ],
)
def test_ecr_refuses_what_createrepository_refuses(repository: str, rule: str) -> None:
    problem = repository_problem(repository)
    assert problem is not None and problem.rule.startswith(rule)


@pytest.mark.parametrize("repository", ["dockerhub/library/nginx", "ab", "gcr/google_containers/pause", "a.b_c-d/e"])
def test_ecr_accepts_names_of_its_grammar(repository: str) -> None:
    assert repository_problem(repository) is None


def test_the_kind_is_chosen_from_the_config() -> None:
    assert isinstance(kind_for(Config()), EcrTarget)
    assert isinstance(kind_for(parse_config({"target": {"registry": "mirror.example.com"}})), OciTarget)
    # Plain registries take "__" (the distribution grammar), but not names over 255 characters with the host.
    oci = OciTarget(parse_config({"target": {"registry": "mirror.example.com"}}))
    assert oci.name_problem(Target("mirror.example.com", "dockerhub/someorg/my__app", "1", None)) is None
    assert oci.name_problem(Target("mirror.example.com", "x/" + "a" * 240, "1", None)) is not None


def test_dual_stack_hosts_are_ecr() -> None:
    assert parse_registry_host("602401143452.dkr-ecr.us-west-2.on.aws") == ("602401143452", "us-west-2")
    assert parse_registry_host("602401143452.dkr.ecr.us-west-2.amazonaws.com") == ("602401143452", "us-west-2")
    assert parse_registry_host("602401143452.dkr-ecr.us-west-2.on.aws.evil.com") is None
    assert isinstance(
        kind_for(parse_config({"target": {"registry": "123456789012.dkr-ecr.eu-west-1.on.aws"}})), EcrTarget
    )


def test_check_names_the_rule_at_file_line_col() -> None:
    text = f"nginx:1.25\n  docker.io/someorg/my__app:1.0\ndocker.io/someorg/my---app:1.0\nregistry.k8s.io/{LONG}:v1\n"
    listing = parse_list(text, REQUIRED, ListKind.REQUIRED)
    result = check_lists([listing], mapper_for(Config()), MirroredIndex(()))
    assert [str(c.target).rsplit("/", 1)[-1] for c in result.entries] == ["nginx:1.25"]
    found = [(p.line, p.col, p.message) for p in result.errors]
    assert [(line, col) for line, col, _ in found] == [(2, 3), (3, 1), (4, 1)]
    assert ECR_PATTERN in found[0][2] and "dockerhub/someorg/my__app" in found[0][2]
    assert "ECR repository name length" in found[2][2] and "260 characters" in found[2][2]
    # The same lines into a plain registry: "__" and "---" are fine there; the long name is not.
    plain = check_lists([listing], mapper_for(parse_config({"target": {"registry": "mirror.example.com"}})))
    assert [(p.line, "OCI name length" in p.message) for p in plain.errors] == [(4, True)]


def test_check_and_map_commands_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirror").mkdir()
    (tmp_path / REQUIRED).write_text("nginx:1.25\ndocker.io/someorg/my__app:1.0\n", encoding="utf-8")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert f"{REQUIRED}:2:1: docker.io/someorg/my__app:1.0: ECR refuses the mirror repository" in err
    ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert main(["map", "--registry", ecr, "nginx:1.25", "docker.io/someorg/my__app:1.0"]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == f"{ecr}/dockerhub/nginx:1.25"
    assert ECR_PATTERN in err and "my__app" in err


def test_validate_pr_refuses_before_upstream_and_the_comment_gives_the_rule_and_fix() -> None:
    upstream = RecordingUpstream({"docker.io/library/nginx:1.25": facts()})
    change = ListChange(REQUIRED, b"", b"nginx:1.25\ndocker.io/someorg/my__app:1.0\n")
    config = Config()
    result = validate_changes(
        [change], mapper=mapper_for(config), upstream=upstream, limits=config.limits, mirrored=MirroredIndex(())
    )
    assert upstream.calls == ["docker.io/library/nginx:1.25"]  # the refused line never reached upstream
    bad = result.lines[1]
    assert not bad.ok and bad.target is None
    (issue,) = bad.issues
    assert ECR_PATTERN in issue.message and "rule that renames it" in issue.fix
    body = render_comment(result)
    assert "ECR repository name pattern" in body and "rule that renames it" in body
    assert "docker pull" not in body.split("my__app", 1)[1].split("\n", 3)[0]
