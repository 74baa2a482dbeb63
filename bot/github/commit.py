"""Commit an updated list file back to the repository through the GitHub API (PyGithub).

The change is a function of the file's current content, so a conflicting update (someone else committed in
between) is handled by reading the file again, applying the same change and retrying. A commit never starts
the sync workflow again: its message carries ``[skip ci]`` (commits made with the workflow's own
``GITHUB_TOKEN`` start no workflow anyway). When the branch is protected, the change goes to one branch
(``image-mirror/<list name>``) and one pull request instead, reused by later runs while it is open, and the
outcome says so.
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
    updated: bool = False  # PULL_REQUEST: the change went to the pull request already open

    def describe(self, path: str) -> str:
        if self.status == UNCHANGED:
            return f"{path} is unchanged; nothing to commit"
        if self.status == COMMITTED:
            return f"committed {path} to {self.branch} ({self.sha})"
        if self.updated:
            return f"{self.branch} is protected: updated the open pull request with the change to {path}: {self.url}"
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
    write) up to ``attempts`` times; a protected branch gets a pull request instead (see :func:`_pull_request`).
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


def pull_request_branch_for(path: str) -> str:
    """The one branch that carries the change to ``path`` while the default branch is protected."""
    return f"{PR_BRANCH_PREFIX}{path.rsplit('/', 1)[-1].removesuffix('.txt')}"


def _pull_request(
    repo: Repository,
    path: str,
    change: Callable[[str], str],
    message: str,
    *,
    base: str,
    head: str | None,
) -> CommitOutcome:
    """Propose the change on one branch and one open pull request, reused by every run until it is merged.

    With a pull request open from ``head`` the change is applied on top of the branch (it accumulates what
    earlier runs proposed); without one the branch starts again from ``base`` (an old, merged or closed
    proposal is not carried over) and a pull request is opened.
    """
    from github import GithubException

    head = head or pull_request_branch_for(path)
    title = message.splitlines()[0]
    try:
        open_pulls = list(repo.get_pulls(state="open", head=f"{repo.owner.login}:{head}", base=base))
        existing = open_pulls[0] if open_pulls else None
        if existing is None:
            _start_branch(repo, head, repo.get_branch(base).commit.sha)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            old, sha = _read(repo, path, head)
            new = change(old)
            if new == old:
                break
            try:
                _write(repo, path, message, new, sha=sha, branch=head)
            except GithubException as exc:
                if _is_conflict(exc) and attempt < MAX_ATTEMPTS:
                    continue
                raise
            break
        if existing is not None:
            return CommitOutcome(PULL_REQUEST, base, url=existing.html_url, updated=True)
        pull = repo.create_pull(
            base=base,
            head=head,
            title=title,
            body=f"`{base}` is protected, so the image mirror proposes its update of `{path}` here. "
            "Merge it to record the images that were copied; until then later runs add to this pull request.",
        )
    except GithubException as exc:
        raise GitHubError(
            f"{base} is protected and proposing the change to {path} in a pull request failed: {_message(exc)}; "
            "grant 'permissions: contents: write, pull-requests: write' or allow the workflow to push to "
            f"{base}"
        ) from exc
    return CommitOutcome(PULL_REQUEST, base, url=pull.html_url)


def _start_branch(repo: Repository, branch: str, sha: str) -> None:
    """Point ``branch`` at ``sha``: create it, or move a leftover one there (its pull request is closed)."""
    ref = f"refs/heads/{branch}"
    for found in repo.get_git_matching_refs(f"heads/{branch}"):
        if found.ref == ref:
            found.edit(sha, force=True)
            return
    repo.create_git_ref(ref, sha)


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
