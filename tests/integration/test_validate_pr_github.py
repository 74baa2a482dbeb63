"""The GitHub REST fake through PyGithub, and the PR adapter over it (bot.github)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github import Auth, Github, GithubException

from bot.errors import GitHubError
from bot.github.pull_request import PullRequestFiles, connect
from tests.harness.github_fake import GitHubFake, blob_sha

REPO = "octo/mirror"
TOKEN = "ghs_fake_token"
PERSONAL_TOKEN = "ghp_fake_personal_token"


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with GitHubFake(token=TOKEN) as server:
        server.add_repo(REPO, files={"mirror/required-images.txt": b"# x\n", "README.md": b"hi\n"})
        yield server


def client(fake: GitHubFake, token: str = TOKEN) -> Github:
    return Github(
        base_url=fake.base_url,
        auth=Auth.Token(token),
        retry=None,
        seconds_between_requests=0,
        seconds_between_writes=0,
    )


def test_contents_put_checks_the_sha_and_protection(fake: GitHubFake) -> None:
    repo = client(fake).get_repo(REPO)
    current = repo.get_contents("mirror/required-images.txt")
    assert not isinstance(current, list)
    assert current.sha == blob_sha(b"# x\n")
    repo.update_file("mirror/required-images.txt", "add", "# x\nnginx\n", current.sha, branch="main")
    assert fake.file(REPO, "mirror/required-images.txt") == b"# x\nnginx\n"
    with pytest.raises(GithubException) as stale:
        repo.update_file("mirror/required-images.txt", "again", "y\n", current.sha, branch="main")
    assert stale.value.status == 409
    fake.protect_branch(REPO, "main", "checks")
    fresh = repo.get_contents("mirror/required-images.txt")
    assert not isinstance(fresh, list)
    with pytest.raises(GithubException) as protected:
        repo.update_file("mirror/required-images.txt", "x", "z\n", fresh.sha, branch="main")
    assert protected.value.status == 409
    assert "required status checks are expected" in str(protected.value.data)
    fake.commit(REPO, "side", {})
    created = repo.create_file("mirror/new.txt", "new", "n\n", branch="side")
    assert created["commit"].sha == repo.get_branch("side").commit.sha
    assert fake.file(REPO, "mirror/new.txt", "side") == b"n\n"
    assert fake.file(REPO, "mirror/new.txt") is None


def test_wrong_token_is_refused(fake: GitHubFake) -> None:
    with pytest.raises(GithubException) as refused:
        client(fake, "ghs_other").get_repo(REPO)
    assert refused.value.status == 401


def test_pull_files_paginate_and_pulls_can_be_created(fake: GitHubFake) -> None:
    fake.commit(REPO, "many", {f"f{index:03}.txt": b"x\n" for index in range(75)})
    repo = client(fake).get_repo(REPO)
    pull = repo.create_pull(title="t", body="b", head="many", base="main")
    files = list(pull.get_files())
    assert len(files) == 75 and files[0].status == "added" and files[0].patch == "@@ -0,0 +1 @@\n+x"
    pages = [r.query.get("page") for r in fake.requests_to("GET", rf"/repos/{REPO}/pulls/\d+/files")]
    assert pages == [None, ["2"], ["3"]]


def test_adapter_reads_changes_and_keeps_one_comment(fake: GitHubFake) -> None:
    fake.commit(REPO, "req", {"mirror/required-images.txt": b"# x\nnginx:1\n", "README.md": None})
    number = fake.open_pull(REPO, head="req")
    pull = PullRequestFiles(connect(fake.base_url, TOKEN), REPO, number)
    (change,) = pull.list_changes(["mirror/required-images.txt", "mirror/required-images-daily.txt"])
    assert (change.base, change.head) == (b"# x\n", b"# x\nnginx:1\n")
    assert (pull.changed_paths() or {})["README.md"] == "removed"
    assert not pull.is_fork
    first = pull.upsert_comment("<!-- m -->\none", "<!-- m -->")
    second = pull.upsert_comment("<!-- m -->\ntwo", "<!-- m -->")
    assert first == second
    assert fake.comments(REPO, number) == ["<!-- m -->\ntwo"]


def test_a_personal_access_token_keeps_one_comment_too() -> None:
    # The action's github-token input may be a PAT: its comments are a user's, not a bot's.
    with GitHubFake(token=PERSONAL_TOKEN, bot_login="mirror-maintainer") as fake:
        fake.add_repo(REPO, files={"mirror/required-images.txt": b"# x\n"})
        fake.commit(REPO, "req", {"mirror/required-images.txt": b"# x\nnginx:1\n"})
        number = fake.open_pull(REPO, head="req")
        fake.add_comment(REPO, number, "<!-- m -->\nspoofed by the author", user="someone")
        pull = PullRequestFiles(connect(fake.base_url, PERSONAL_TOKEN), REPO, number)
        first = pull.upsert_comment("<!-- m -->\none", "<!-- m -->")
        second = pull.upsert_comment("<!-- m -->\ntwo", "<!-- m -->")
        assert first == second
        assert fake.comments(REPO, number) == ["<!-- m -->\nspoofed by the author", "<!-- m -->\ntwo"]


def test_adapter_errors_name_the_fix(fake: GitHubFake) -> None:
    with pytest.raises(GitHubError, match="cannot read pull request octo/mirror#9"):
        PullRequestFiles(connect(fake.base_url, TOKEN), REPO, 9)
