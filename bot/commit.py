"""Commit an updated list file back to the repository through the GitHub API (PyGithub).

The change is a function of the file's current content, so a conflicting update (someone else committed in
between) is handled by reading the file again, applying the same change and retrying. A commit never starts
the sync workflow again: its message carries ``[skip ci]`` (commits made with the workflow's own
``GITHUB_TOKEN`` start no workflow anyway). When the branch is protected, the change goes to a new branch and
a pull request instead, and the outcome says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import GitHubError

if TYPE_CHECKING:
    from github.Repository import Repository

SKIP_CI = "[skip ci]"
MAX_ATTEMPTS = 5
PR_BRANCH_PREFIX = "image-mirror/"

UNCHANGED = "unchanged"
COMMITTED = "committed"
PULL_REQUEST = "pull-request"


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    status: str  # UNCHANGED, COMMITTED or PULL_REQUEST
    branch: str
    sha: str | None = None
    url: str | None = None
    attempts: int = 1

    def describe(self, path: str) -> str:
        if self.status == UNCHANGED:
            return f"{path} is unchanged; nothing to commit"
        if self.status == COMMITTED:
            return f"committed {path} to {self.branch} ({self.sha})"
        return f"{self.branch} is protected: opened a pull request with the change to {path}: {self.url}"


def repository_from_environment(environ: Mapping[str, str] | None = None) -> Repository:
    """The repository of the running workflow: ``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``, ``GITHUB_API_URL``."""
    from github import Auth, Github, GithubException

    environ = os.environ if environ is None else environ
    name = environ.get("GITHUB_REPOSITORY")
    token = environ.get("GITHUB_TOKEN")
    if not name or not token:
        raise GitHubError(
            "--commit needs GITHUB_REPOSITORY and GITHUB_TOKEN in the environment; in a workflow pass "
            "'GITHUB_TOKEN: ${{ github.token }}' through env: and grant 'permissions: contents: write'"
        )
    github = Github(
        base_url=environ.get("GITHUB_API_URL", "https://api.github.com"),
        auth=Auth.Token(token),
        seconds_between_requests=0,
        seconds_between_writes=0,
    )
    try:
        return github.get_repo(name)
    except GithubException as exc:
        raise GitHubError(f"cannot open repository {name}: {_message(exc)}") from exc


def commit_file(
    repo: Repository,
    path: str,
    change: Callable[[str], str],
    message: str,
    *,
    branch: str | None = None,
    attempts: int = MAX_ATTEMPTS,
    pull_request_branch: str | None = None,
) -> CommitOutcome:
    """Apply ``change`` to ``path`` on ``branch`` (default: the repository's default branch) and commit.

    Nothing is committed when the content stays the same. A conflicting update is retried (read, change,
    write) up to ``attempts`` times; a protected branch gets a pull request from a new branch instead.
    """
    from github import GithubException

    branch = branch or repo.default_branch
    message = message if SKIP_CI in message else f"{message}\n\n{SKIP_CI}"
    for attempt in range(1, attempts + 1):
        old, sha = _read(repo, path, branch)
        new = change(old)
        if new == old:
            return CommitOutcome(UNCHANGED, branch, attempts=attempt)
        try:
            result = _write(repo, path, message, new, sha=sha, branch=branch)
        except GithubException as exc:
            if _is_conflict(exc):
                time.sleep(min(0.2 * attempt, 1.0))
                continue
            if exc.status in (403, 409, 422) and _is_protected(repo, branch):
                return _pull_request(repo, path, change, message, base=branch, head=pull_request_branch)
            raise _write_error(exc, path, branch) from exc
        return CommitOutcome(COMMITTED, branch, result, attempts=attempt)
    raise GitHubError(
        f"cannot commit {path} to {branch}: it changed under us {attempts} times in a row; run the job again"
    )


def _read(repo: Repository, path: str, ref: str) -> tuple[str, str | None]:
    from github import GithubException, UnknownObjectException

    try:
        contents = repo.get_contents(path, ref=ref)
    except UnknownObjectException:
        return "", None
    except GithubException as exc:
        raise GitHubError(f"cannot read {path} on {ref}: {_message(exc)}") from exc
    if isinstance(contents, list):
        raise GitHubError(f"{path} on {ref} is a directory, not a list file")
    return contents.decoded_content.decode("utf-8"), contents.sha


def _write(repo: Repository, path: str, message: str, content: str, *, sha: str | None, branch: str) -> str:
    if sha is None:
        result = repo.create_file(path, message, content, branch=branch)
    else:
        result = repo.update_file(path, message, content, sha, branch=branch)
    commit = result["commit"]
    return str(getattr(commit, "sha", ""))


def _is_conflict(exc: Exception) -> bool:
    """A stale blob sha: the file changed (or was created) between our read and our write."""
    status = getattr(exc, "status", None)
    text = _message(exc).lower()
    if status == 422 and '"sha" wasn' in text:  # created by someone else after we read it as missing
        return True
    return status == 409 and ("does not match" in text or "expected" in text) and "protected" not in text


def _is_protected(repo: Repository, branch: str) -> bool:
    from github import GithubException

    try:
        return bool(repo.get_branch(branch).protected)
    except GithubException:
        return False


def _pull_request(
    repo: Repository,
    path: str,
    change: Callable[[str], str],
    message: str,
    *,
    base: str,
    head: str | None,
) -> CommitOutcome:
    from github import GithubException

    if head is None:
        run = os.environ.get("GITHUB_RUN_ID")
        suffix = f"{run}-{os.environ.get('GITHUB_RUN_ATTEMPT', '1')}" if run else str(int(time.time()))
        head = f"{PR_BRANCH_PREFIX}{path.rsplit('/', 1)[-1].removesuffix('.txt')}-{suffix}"
    title = message.splitlines()[0]
    try:
        start = repo.get_branch(base).commit.sha
        repo.create_git_ref(f"refs/heads/{head}", start)
        old, sha = _read(repo, path, head)
        new = change(old)
        _write(repo, path, message, new, sha=sha, branch=head)
        pull = repo.create_pull(
            base=base,
            head=head,
            title=title,
            body=f"`{base}` is protected, so the image mirror proposes its update of `{path}` here. "
            "Merge it to record the images that were copied.",
        )
    except GithubException as exc:
        raise GitHubError(
            f"{base} is protected and opening a pull request with the change to {path} failed: {_message(exc)}; "
            "grant 'permissions: contents: write, pull-requests: write' or allow the workflow to push to "
            f"{base}"
        ) from exc
    return CommitOutcome(PULL_REQUEST, base, url=pull.html_url)


def _write_error(exc: Exception, path: str, branch: str) -> GitHubError:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return GitHubError(
            f"cannot commit {path} to {branch}: the token may not write ({_message(exc)}); grant the job "
            "'permissions: contents: write'"
        )
    return GitHubError(f"cannot commit {path} to {branch}: {_message(exc)}")


def _message(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(exc)
