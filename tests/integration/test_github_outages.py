"""GitHub outages through PyGithub and the fake: 5xx, resets, stalled answers, lost answers to writes and rate
limits on every kind of call (reading the pull request, listing its files, reading contents, writing the
comment, committing). Retried within the budget; past it, one sentence on stderr, the documented exit status,
and the step outputs, the job summary and the local list still written. No traceback.

The retry policy is shortened for the tests (budget of a few seconds, waits of tens of milliseconds); the
commands run in this process so they use it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import GitHubError
from bot.github import api
from bot.github.commit import COMMITTED, PULL_REQUEST, commit_file, workflow_repository
from bot.reference import parse_reference
from bot.report.comment import MARKER
from bot.settings import Settings
from bot.shard import merge_mirrored
from tests.harness.bot_process import Checkout
from tests.harness.github_fake import GitHubFake
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer
from tests.integration import test_validate_pr
from tests.integration.test_validate_pr import FAKE_TOKEN, REPO, Scenario

PATH = "mirror/mirrored-images.txt"
NGINX = "nginx:1.25@sha256:" + "1" * 64
REDIS = "redis:7@sha256:" + "2" * 64


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        api, "POLICY", api.RetryPolicy(budget=4.0, first_wait=0.05, max_wait=0.3, timeout=1.0, secondary_wait=0.2)
    )


def add(*lines: str) -> Callable[[str], str]:
    return lambda text: merge_mirrored(text, [parse_reference(line) for line in lines])


# -- commit-back -----------------------------------------------------------------------------------------------


def test_every_call_of_a_commit_survives_a_passing_outage(commit_github: GitHubFake) -> None:
    fake = commit_github
    fake.add_repo(REPO, files={PATH: f"{NGINX}\n".encode()})
    fake.inline_limit = 10  # the list is read through the git blobs API as well
    before = len(fake.history(REPO, "main"))
    fake.fail("GET", rf"/repos/{REPO}", "502", times=2)
    fake.fail("GET", rf"/repos/{REPO}/contents/.*", "503")
    fake.fail("GET", rf"/repos/{REPO}/contents/.*", "reset")
    fake.fail("GET", rf"/repos/{REPO}/git/blobs/.*", "stall", seconds=1.5)  # past the 1 s timeout
    fake.fail("PUT", rf"/repos/{REPO}/contents/.*", "secondary", seconds=0)
    fake.fail("PUT", rf"/repos/{REPO}/contents/.*", "lost")  # committed, then answered 502

    outcome = commit_file(
        workflow_repository(Settings.from_environ(os.environ)), PATH, add(REDIS), "Record 1 mirrored image"
    )

    assert outcome.status == COMMITTED
    assert fake.file(REPO, PATH) == f"{NGINX}\n{REDIS}\n".encode()
    assert len(fake.history(REPO, "main")) == before + 1  # the repeated write did not commit twice
    assert all(fault.times == 0 for fault in fake.faults)


def test_opening_the_pull_request_survives_a_passing_outage(commit_github: GitHubFake) -> None:
    fake = commit_github
    fake.add_repo(REPO, files={PATH: f"{NGINX}\n".encode()})
    fake.protect_branch(REPO, "main", "checks")
    fake.fail("GET", rf"/repos/{REPO}/branches/main", "504")  # is main protected?
    fake.fail("GET", rf"/repos/{REPO}/pulls", "reset")  # is a pull request open already?
    fake.fail("POST", rf"/repos/{REPO}/git/refs", "lost")  # the branch is created, the answer lost
    fake.fail("PUT", rf"/repos/{REPO}/contents/.*", "503", times=2)  # the refused write to main, then the branch
    fake.fail("POST", rf"/repos/{REPO}/pulls", "lost")  # the pull request is opened, the answer lost

    outcome = commit_file(
        workflow_repository(Settings.from_environ(os.environ)), PATH, add(REDIS), "Record 1 mirrored image"
    )

    assert outcome.status == PULL_REQUEST
    assert all(fault.times == 0 for fault in fake.faults)
    assert [pull.head_ref for pull in fake.pulls.values()] == ["image-mirror/mirrored-images"]  # exactly one
    assert fake.file(REPO, PATH, ref="image-mirror/mirrored-images") == f"{NGINX}\n{REDIS}\n".encode()
    assert fake.file(REPO, PATH) == f"{NGINX}\n".encode()


def failing_commit(fake: GitHubFake, method: str, kind: str, *, seconds: float = 0.0) -> tuple[GitHubError, float]:
    """A commit of REDIS while every ``method`` to the contents API fails with ``kind``: the error, the seconds."""
    fake.add_repo(REPO, files={PATH: f"{NGINX}\n".encode()})
    repo = workflow_repository(Settings.from_environ(os.environ))
    fake.fail(method, rf"/repos/{REPO}/contents/.*", kind, times=1000, seconds=seconds)
    started = time.monotonic()
    with pytest.raises(GitHubError) as caught:
        commit_file(repo, PATH, add(REDIS), "Record")
    return caught.value, time.monotonic() - started


def test_a_rate_limit_past_the_budget_fails_at_once_and_names_the_time(commit_github: GitHubFake) -> None:
    error, seconds = failing_commit(commit_github, "GET", "secondary-reset", seconds=3600)
    assert re.search(r"rate limit \(core\) allows the next request at \d\d:\d\d:\d\d UTC", str(error))
    assert seconds < 1


def test_an_outage_that_outlasts_the_budget_is_one_clear_error(commit_github: GitHubFake) -> None:
    error, seconds = failing_commit(commit_github, "PUT", "502")
    assert seconds < 6
    assert "cannot commit mirror/mirrored-images.txt to main: GitHub did not answer successfully" in str(error)
    assert "502 Bad Gateway" in str(error) and "githubstatus.com" in str(error)
    assert commit_github.file(REPO, PATH) == f"{NGINX}\n".encode()  # nothing half-committed


def test_sync_commit_during_an_outage_keeps_the_list_and_says_how_to_rerun(
    source: RegistryServer,
    registry: RegistryServer,
    commit_github: GitHubFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = commit_github
    image = push_image(source, "team/app", "1", seed=3)
    checkout = Checkout.create(tmp_path / "checkout", source.host, registry.host, [image.reference])
    fake.add_repo(REPO, files={PATH: b""})
    summary = tmp_path / "summary.md"
    monkeypatch.chdir(checkout.path)
    monkeypatch.setenv("DOCKER_CONFIG", str(checkout.path / "docker"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    fake.fail("PUT", rf"/repos/{REPO}/contents/.*", "502", times=1000)

    assert main(["sync", "--commit"]) == 1

    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "not committed" in line]
    assert "GitHub did not answer successfully" in line and "run the job again" in line
    assert checkout.mirrored_lines() == [f"{image.reference}@{image.digest}"]  # the local list holds the image
    assert fake.file(REPO, PATH) == b""  # the branch is untouched
    assert "not committed" in summary.read_text()


# -- validate-pr -----------------------------------------------------------------------------------------------


scenario = test_validate_pr.scenario  # the same fixture: a repository in the fake, a checkout, a registry


class InProcess:
    """``validate-pr`` run in this process (so the short retry policy applies), as an Actions step."""

    def __init__(self, scenario: Scenario, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.scenario = scenario
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.outputs = scenario.workdir / "outputs.txt"
        self.summary = scenario.workdir / "summary.md"

    def run(self, number: int) -> tuple[int, str]:
        workdir = self.scenario.workdir
        event = workdir / "event.json"
        event.write_text(json.dumps({"number": number, "pull_request": {"number": number}}))
        self.outputs.write_text("")
        self.summary.write_text("")
        for key, value in {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": self.scenario.fake.base_url,
            "GITHUB_TOKEN": FAKE_TOKEN,
            "GITHUB_OUTPUT": str(self.outputs),
            "GITHUB_STEP_SUMMARY": str(self.summary),
        }.items():
            self.monkeypatch.setenv(key, value)
        self.monkeypatch.chdir(workdir)
        code = main(["validate-pr"])
        return code, self.capsys.readouterr().err

    def result(self) -> dict[str, object]:
        text = self.outputs.read_text()
        start = text.index("result<<")
        body = text[start:].split("\n", 1)[1]
        data: dict[str, object] = json.loads(body.split("\n", 1)[0])
        return data


@pytest.fixture
def in_process(scenario: Scenario, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(scenario, monkeypatch, capsys)


def test_validate_pr_rides_out_a_passing_outage_on_every_call(scenario: Scenario, in_process: InProcess) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    number = scenario.open_pull([scenario.ref("team/app", "v1")])
    fake = scenario.fake
    fake.fail("GET", rf"/repos/{REPO}/pulls/{number}", "502")  # reading the pull request
    fake.fail("GET", rf"/repos/{REPO}/pulls/{number}/files", "secondary", seconds=0)  # listing its files
    fake.fail("GET", rf"/repos/{REPO}/contents/.*", "reset")  # reading a list file
    fake.fail("GET", rf"/repos/{REPO}/issues/{number}/comments", "stall", seconds=1.5)  # finding the comment
    fake.fail("POST", rf"/repos/{REPO}/issues/{number}/comments", "lost")  # posting it; the answer is lost

    code, err = in_process.run(number)

    assert code == 0, err
    assert all(fault.times == 0 for fault in fake.faults)
    (comment,) = scenario.comments(number)  # the lost answer did not make a second comment
    assert comment.startswith(MARKER)
    assert "#issuecomment-" in in_process.outputs.read_text()


def test_validate_pr_cannot_read_the_pull_request(scenario: Scenario, in_process: InProcess) -> None:
    number = scenario.open_pull(["nginx:1.25"])
    scenario.fake.fail("GET", rf"/repos/{REPO}/pulls/{number}", "503", times=1000)

    code, err = in_process.run(number)

    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if line.startswith(f"error: cannot read pull request {REPO}#")
    ]
    assert "GitHub did not answer successfully" in err
    result = in_process.result()
    assert result["ok"] is False and "503 Service Unavailable" in json.dumps(result["issues"])
    assert "cannot read pull request" in in_process.summary.read_text()
    assert not scenario.comments(number)


def test_validate_pr_cannot_post_the_comment(scenario: Scenario, in_process: InProcess) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    number = scenario.open_pull([scenario.ref("team/app", "v1")])
    scenario.fake.fail("POST", rf"/repos/{REPO}/issues/{number}/comments", "502", times=1000)

    code, err = in_process.run(number)

    assert code == 1
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if line.startswith(f"error: cannot write the comment on #{number}"))
    ]
    lines = in_process.result()["lines"]
    assert isinstance(lines, list) and [line["status"] for line in lines] == ["ok"]  # the check was done
    assert "comment-url<<" in in_process.outputs.read_text()
    assert "| Line | Source | Mirror path |" in in_process.summary.read_text()
