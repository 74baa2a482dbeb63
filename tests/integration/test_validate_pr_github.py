"""The GitHub REST fake through PyGithub, and the PR adapter over it (bot.github)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
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


def test_raw_media_type_and_download_url_give_the_bytes(fake: GitHubFake) -> None:
    big = b"x" * (1024 * 1024 + 1)
    fake.commit(REPO, "main", {"mirror/big.txt": big})
    repo = client(fake).get_repo(REPO)
    meta = repo.get_contents("mirror/big.txt")
    assert not isinstance(meta, list)
    assert (meta.encoding, meta.content, meta.size) == ("none", "", len(big))  # over 1 MB: no content
    status, headers, _ = repo.requester.requestJson(
        "GET", f"{repo.url}/contents/mirror/big.txt", headers={"Accept": "application/vnd.github.raw+json"}
    )
    assert status == 200 and headers["content-type"] == "application/vnd.github.raw"
    raw = requests.get(meta.download_url, timeout=10)
    assert raw.content == big
    blob = requests.get(
        f"{repo.url}/git/blobs/{meta.sha}",
        headers={"Accept": "application/vnd.github.raw+json", "Authorization": f"token {TOKEN}"},
        timeout=10,
    )
    assert blob.content == big


def test_rate_limit_headers_and_an_exhausted_limit(fake: GitHubFake) -> None:
    github = client(fake)
    github.get_repo(REPO)
    remaining, limit = github.rate_limiting
    assert limit == 1000 and remaining == 999  # GITHUB_TOKEN: 1,000 requests per hour per repository
    fake.rate_limit = fake.rate_used
    with pytest.raises(GithubException) as exhausted:
        github.get_repo(REPO)
    assert exhausted.value.status == 403
    assert exhausted.value.headers is not None and exhausted.value.headers["x-ratelimit-remaining"] == "0"
    assert "API rate limit exceeded" in str(exhausted.value.data)


def test_user_is_refused_to_an_installation_token() -> None:
    with GitHubFake(token=TOKEN) as installation, GitHubFake(token=PERSONAL_TOKEN, bot_login="someone") as personal:
        with pytest.raises(GithubException) as refused:
            _ = client(installation).get_user().login
        assert refused.value.status == 403
        assert client(personal, PERSONAL_TOKEN).get_user().login == "someone"


def test_a_comment_over_65536_characters_is_refused(fake: GitHubFake) -> None:
    fake.commit(REPO, "req", {"README.md": b"x\n"})
    number = fake.open_pull(REPO, head="req")
    pull = client(fake).get_repo(REPO).get_pull(number)
    with pytest.raises(GithubException) as refused:
        pull.create_issue_comment("x" * 65537)
    assert refused.value.status == 422
    assert "Body is too long (maximum is 65536 characters)" in str(refused.value.data)
    comment = pull.create_issue_comment("x" * 65536)
    with pytest.raises(GithubException) as edit:
        comment.edit("y" * 65537)
    assert edit.value.status == 422


def test_pull_request_creation_errors(fake: GitHubFake) -> None:
    repo = client(fake).get_repo(REPO)
    fake.commit(REPO, "same", {}, start="main")
    fake.repos[REPO].branches["same"] = fake.repos[REPO].branches["main"]
    with pytest.raises(GithubException) as empty:
        repo.create_pull(title="t", body="b", head="same", base="main")
    assert empty.value.status == 422 and "No commits between main and same" in str(empty.value.data)
    fake.commit(REPO, "feature", {"a.txt": b"a\n"})
    repo.create_pull(title="t", body="b", head="feature", base="main")
    with pytest.raises(GithubException) as again:
        repo.create_pull(title="t", body="b", head="feature", base="main")
    assert again.value.status == 422 and "A pull request already exists for octo:feature." in str(again.value.data)
    fake.actions_may_create_pulls = False
    fake.commit(REPO, "other", {"b.txt": b"b\n"})
    with pytest.raises(GithubException) as setting:
        repo.create_pull(title="t", body="b", head="other", base="main")
    assert setting.value.status == 403
    assert "GitHub Actions is not permitted to create or approve pull requests." in str(setting.value.data)


def test_a_deleted_fork_leaves_head_repo_null_and_its_files_readable(fake: GitHubFake) -> None:
    fake.fork(REPO, "mallory")
    fake.commit("mallory/mirror", "req", {"mirror/required-images.txt": b"# x\nnginx:1\n"})
    number = fake.open_pull(REPO, head="req", head_repo="mallory/mirror")
    fake.delete_repo("mallory/mirror")
    assert client(fake).get_repo(REPO).get_pull(number).head.repo is None
    pull = PullRequestFiles(connect(fake.base_url, TOKEN), REPO, number)
    assert pull.is_fork
    (change,) = pull.list_changes(["mirror/required-images.txt"])
    assert change.head == b"# x\nnginx:1\n"


def test_files_are_listed_against_the_merge_base(fake: GitHubFake) -> None:
    fake.commit(REPO, "req", {"mirror/required-images.txt": b"# x\nnginx:1\n"})
    fake.commit(REPO, "main", {"README.md": b"changed on main after the branch\n"})
    number = fake.open_pull(REPO, head="req")
    pull = PullRequestFiles(connect(fake.base_url, TOKEN), REPO, number)
    assert pull.changed_paths() == {"mirror/required-images.txt": "modified"}  # not README.md


def test_a_pull_request_past_3000_files_still_finds_the_list_file(fake: GitHubFake) -> None:
    files: dict[str, bytes | None] = {f"docs/f{index:04}.txt": b"x\n" for index in range(3000)}
    files["mirror/required-images.txt"] = b"# x\nnginx:1\n"  # sorts after docs/: not in the first 3,000
    fake.commit(REPO, "huge", files)
    number = fake.open_pull(REPO, head="huge")
    listed = client(fake).get_repo(REPO).get_pull(number)
    assert listed.changed_files == 3001 and listed.get_files().totalCount == 3000
    pull = PullRequestFiles(connect(fake.base_url, TOKEN), REPO, number)
    assert pull.changed_paths() is None  # GitHub's list is cut: not to be trusted
    (change,) = pull.list_changes(["mirror/required-images.txt", "mirror/required-images-daily.txt"])
    assert (change.path, change.head) == ("mirror/required-images.txt", b"# x\nnginx:1\n")
