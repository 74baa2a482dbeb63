"""Commit-back of mirrored-images.txt through PyGithub, against the local GitHub REST fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from github import Auth, Github
from github.Repository import Repository

from bot.errors import GitHubError
from bot.github.commit import COMMITTED, PULL_REQUEST, UNCHANGED, commit_file, workflow_repository
from bot.reference import parse_reference
from bot.settings import Settings
from bot.shard import merge_mirrored
from tests.harness.github_fake import COMMIT_TOKEN, CommitFake

REPO = "octo/mirror"
PATH = "mirror/mirrored-images.txt"
TOKEN = COMMIT_TOKEN
NGINX = "nginx:1.25@sha256:" + "1" * 64
REDIS = "redis:7@sha256:" + "2" * 64
BUSYBOX = "busybox:1.36@sha256:" + "3" * 64


@pytest.fixture
def fake() -> Iterator[CommitFake]:
    server = CommitFake()
    server.start()
    server.add_repo(REPO, files={PATH: f"{NGINX}\n".encode(), "mirror/required-images.txt": b"nginx:1.25\n"})
    yield server
    server.stop()


@pytest.fixture
def repo(fake: CommitFake) -> Repository:
    github = Github(
        base_url=fake.base_url, auth=Auth.Token(TOKEN), retry=None, seconds_between_requests=0, seconds_between_writes=0
    )
    return github.get_repo(REPO)


def add(*lines: str) -> Callable[[str], str]:
    return lambda text: merge_mirrored(text, [parse_reference(line) for line in lines])


def test_commit_writes_the_merged_list_once_with_skip_ci(fake: CommitFake, repo: Repository) -> None:
    outcome = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert outcome.status == COMMITTED
    assert fake.file(REPO, PATH) == f"{NGINX}\n{REDIS}\n".encode()
    head = fake.commits[fake.repos[REPO].branches["main"]]
    assert head.message.startswith("Record 1 mirrored image")
    assert "[skip ci]" in head.message  # the commit must not start the sync workflow again
    assert outcome.sha == head.sha

    again = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert again.status == UNCHANGED
    assert len(fake.requests_to("PUT", r"/repos/octo/mirror/contents/.*")) == 1


def test_a_conflicting_update_is_read_again_merged_and_retried(fake: CommitFake, repo: Repository) -> None:
    # Another job commits BUSYBOX between our read and our write.
    fake.before_put.append(lambda: fake.commit(REPO, "main", {PATH: f"{BUSYBOX}\n{NGINX}\n".encode()}))
    outcome = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert outcome.status == COMMITTED
    assert outcome.attempts == 2
    assert fake.file(REPO, PATH) == f"{BUSYBOX}\n{NGINX}\n{REDIS}\n".encode()
    puts = fake.requests_to("PUT", r"/repos/octo/mirror/contents/.*")
    assert len(puts) == 2


def test_endless_conflicts_give_up_with_a_clear_message(fake: CommitFake, repo: Repository) -> None:
    def other(number: int) -> Callable[[], object]:
        return lambda: fake.commit(REPO, "main", {PATH: f"# other {number}\n{NGINX}\n".encode()})

    fake.before_put.extend(other(number) for number in range(3))
    with pytest.raises(GitHubError, match="changed under us 3 times"):
        commit_file(repo, PATH, add(REDIS), "Record", attempts=3)


def test_a_missing_file_is_created(fake: CommitFake, repo: Repository) -> None:
    outcome = commit_file(repo, "mirror/new-list.txt", add(REDIS), "Record")
    assert outcome.status == COMMITTED
    assert fake.file(REPO, "mirror/new-list.txt") == f"{REDIS}\n".encode()


def test_a_file_created_under_us_is_read_again_merged_and_retried(fake: CommitFake, repo: Repository) -> None:
    # The list did not exist when we read it; another job creates it before our write.
    new = "mirror/new-list.txt"
    fake.before_put.append(lambda: fake.commit(REPO, "main", {new: f"{BUSYBOX}\n".encode()}))
    outcome = commit_file(repo, new, add(REDIS), "Record")
    assert outcome.status == COMMITTED
    assert outcome.attempts == 2
    assert fake.file(REPO, new) == f"{BUSYBOX}\n{REDIS}\n".encode()


@pytest.mark.parametrize("rule", ["checks", "reviews", "ruleset", "restricted"])
def test_a_protected_branch_gets_a_pull_request(fake: CommitFake, repo: Repository, rule: str) -> None:
    fake.protect_branch(REPO, "main", rule)
    before = fake.file(REPO, PATH)
    outcome = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image", pull_request_branch="image-mirror/test")
    assert outcome.status == PULL_REQUEST
    assert "protected" in outcome.describe(PATH)
    assert fake.file(REPO, PATH) == before  # main untouched
    assert fake.file(REPO, PATH, ref="image-mirror/test") == f"{NGINX}\n{REDIS}\n".encode()
    pull = fake.pulls[(REPO, 1)]
    assert (pull.head_ref, pull.base_ref) == ("image-mirror/test", "main")
    assert outcome.url is not None and outcome.url.endswith("/pull/1")


def test_environment_without_token_is_a_clear_error() -> None:
    with pytest.raises(GitHubError, match="GITHUB_TOKEN"):
        workflow_repository(Settings.from_environ({"GITHUB_REPOSITORY": REPO}))


def test_a_refused_token_is_a_clear_error(fake: CommitFake) -> None:
    env = {"GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": "wrong", "GITHUB_API_URL": fake.base_url}
    with pytest.raises(GitHubError, match="cannot open repository octo/mirror: 401 Bad credentials"):
        workflow_repository(Settings.from_environ(env))
    env["GITHUB_TOKEN"] = TOKEN
    assert workflow_repository(Settings.from_environ(env)).full_name == REPO


def _open_pulls(fake: CommitFake) -> list[tuple[int, str]]:
    return [(number, pull.head_ref) for (name, number), pull in fake.pulls.items() if pull.state == "open"]


def test_runs_against_a_protected_branch_share_one_branch_and_one_pull_request(
    fake: CommitFake, repo: Repository
) -> None:
    fake.protect_branch(REPO, "main")
    before = fake.file(REPO, PATH)
    first = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    second = commit_file(repo, PATH, add(BUSYBOX), "Record 1 mirrored image")
    assert (first.status, second.status) == (PULL_REQUEST, PULL_REQUEST)
    assert _open_pulls(fake) == [(1, "image-mirror/mirrored-images")]  # no second pull request
    assert second.url == first.url and second.url is not None and second.url.endswith("/pull/1")
    assert "opened a pull request" in first.describe(PATH)
    assert "updated the open pull request" in second.describe(PATH)
    branch = fake.file(REPO, PATH, ref="image-mirror/mirrored-images")
    assert branch == f"{BUSYBOX}\n{NGINX}\n{REDIS}\n".encode()  # the second run's content, the first's kept
    assert fake.file(REPO, PATH) == before  # main untouched
    assert len(fake.requests_to("POST", r"/repos/octo/mirror/pulls")) == 1
    assert len(fake.requests_to("POST", r"/repos/octo/mirror/git/refs")) == 1


def test_a_closed_pull_request_is_replaced_from_a_fresh_branch(fake: CommitFake, repo: Repository) -> None:
    fake.protect_branch(REPO, "main")
    commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    fake.pulls[(REPO, 1)].state = "closed"  # dismissed without merging
    outcome = commit_file(repo, PATH, add(BUSYBOX), "Record 1 mirrored image")
    assert outcome.status == PULL_REQUEST and not outcome.updated
    assert _open_pulls(fake) == [(2, "image-mirror/mirrored-images")]
    # The branch starts again from main: the dismissed proposal is not carried into the new one.
    assert fake.file(REPO, PATH, ref="image-mirror/mirrored-images") == f"{BUSYBOX}\n{NGINX}\n".encode()
    assert fake.file(REPO, PATH) == f"{NGINX}\n".encode()


def _puts_to(fake: CommitFake, branch: str) -> int:
    return sum(
        1
        for r in fake.requests_to("PUT", r"/repos/octo/mirror/contents/.*")
        if b'"branch": "' + branch.encode() + b'"' in r.body
    )


def test_required_status_checks_are_protection_not_a_conflict(fake: CommitFake, repo: Repository) -> None:
    # 409 "2 of 2 required status checks are expected": once refused, never retried against main.
    fake.protect_branch(REPO, "main", "checks")
    outcome = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert outcome.status == PULL_REQUEST
    assert _puts_to(fake, "main") == 1
    assert _puts_to(fake, "image-mirror/mirrored-images") == 1


def test_a_branch_that_moved_during_the_write_is_read_again_and_retried(fake: CommitFake, repo: Repository) -> None:
    fake.fail("PUT", r"/repos/octo/mirror/contents/.*", "branch-moved")  # 409 "is at <sha> but expected <sha>"
    outcome = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert (outcome.status, outcome.attempts) == (COMMITTED, 2)
    assert fake.file(REPO, PATH) == f"{NGINX}\n{REDIS}\n".encode()


def test_a_repository_that_forbids_actions_pull_requests_names_the_setting(fake: CommitFake, repo: Repository) -> None:
    fake.protect_branch(REPO, "main", "reviews")
    fake.actions_may_create_pulls = False
    with pytest.raises(GitHubError) as caught:
        commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    text = str(caught.value)
    assert "Allow GitHub Actions to create and approve pull requests" in text
    assert "image-mirror/mirrored-images" in text  # where the change waits
    assert fake.file(REPO, PATH, ref="image-mirror/mirrored-images") == f"{NGINX}\n{REDIS}\n".encode()
    assert fake.file(REPO, PATH) == f"{NGINX}\n".encode()
    assert not fake.pulls


def test_a_pull_request_whose_answer_was_lost_is_found_and_reused(fake: CommitFake, repo: Repository) -> None:
    fake.protect_branch(REPO, "main", "ruleset")
    fake.fail("POST", r"/repos/octo/mirror/pulls", "lost")  # opened, then answered 502; the retry is refused
    outcome = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert outcome.status == PULL_REQUEST
    assert _open_pulls(fake) == [(1, "image-mirror/mirrored-images")]
    assert outcome.url is not None and outcome.url.endswith("/pull/1")


def test_an_unprotected_branch_that_refuses_the_write_is_a_permission_error(fake: CommitFake, repo: Repository) -> None:
    fake.fail("PUT", r"/repos/octo/mirror/contents/.*", "forbidden")
    with pytest.raises(GitHubError, match="grant the job 'permissions: contents: write'"):
        commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert not fake.pulls


def test_a_ruleset_is_found_through_the_rules_api_when_the_answer_does_not_say(
    fake: CommitFake, repo: Repository
) -> None:
    # The branch API says "protected": false for a ruleset; the refusal here names no rule either.
    fake.protect_branch(REPO, "main", "ruleset")
    fake.fail("PUT", r"/repos/octo/mirror/contents/.*", "forbidden")
    outcome = commit_file(repo, PATH, add(REDIS), "Record 1 mirrored image")
    assert outcome.status == PULL_REQUEST
    assert fake.requests_to("GET", r"/repos/octo/mirror/rules/branches/main")
