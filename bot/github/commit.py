"""Commit an updated list file back to the repository through the GitHub API (PyGithub).

Reads go through :func:`bot.github.contents.read_file` (any size up to the list limit). Writes use the contents
API, one ``PUT`` per commit (https://docs.github.com/rest/repos/contents#create-or-update-file-contents, files
up to 100 MB): the request names the blob ``sha`` it replaces, so it is a compare-and-swap on the file and one
request makes exactly one commit. The git data API (blob, tree, commit, ref) would need four writes, each of
which can meet an outage, and its fast-forward check fails on any commit to the branch, not only on a change
to this file.

The change is a function of the file's current content, so a stale write (someone committed the file in
between: "<path> does not match <sha>") is handled by reading the file again, applying the same change and
retrying. Only that is a conflict. A write refused for any other reason (403, 409, 422) on a branch that is
protected, by branch protection or by a ruleset, takes the pull-request path: the change goes to one branch
(``image-mirror/<list name>``) and one pull request, reused by later runs while it is open. A commit never
starts the sync workflow again: its message carries ``[skip ci]``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.errors import GitHubError
from bot.github.api import DEFAULT_API_URL, ask, call, connect
from bot.github.api import message as github_message
from bot.github.contents import read_file
from bot.settings import Settings

if TYPE_CHECKING:
    from github import GithubException
    from github.PullRequest import PullRequest
    from github.Repository import Repository

SKIP_CI = "[skip ci]"
MAX_ATTEMPTS = 5
PR_BRANCH_PREFIX = "image-mirror/"

UNCHANGED = "unchanged"
COMMITTED = "committed"
PULL_REQUEST = "pull-request"

ACTIONS_PR_SETTING = "Allow GitHub Actions to create and approve pull requests"


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
            return f"committed {path} to {self.branch}" + (f" ({self.sha})" if self.sha else "")
        if self.updated:
            return f"{self.branch} is protected: updated the open pull request with the change to {path}: {self.url}"
        return f"{self.branch} is protected: opened a pull request with the change to {path}: {self.url}"


def workflow_repository(settings: Settings) -> Repository:
    """The repository of the running workflow: ``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``, ``GITHUB_API_URL``."""
    name = settings.github_repository
    token = settings.github_token
    if not name or not token:
        raise GitHubError(
            "--commit needs GITHUB_REPOSITORY and GITHUB_TOKEN in the environment; in a workflow pass "
            "'GITHUB_TOKEN: ${{ github.token }}' through env: and grant 'permissions: contents: write'"
        )
    github = connect(settings.github_api_url or DEFAULT_API_URL, token)
    return ask(f"open repository {name}", lambda: github.get_repo(name))


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

    Nothing is committed when the content stays the same. A stale write is retried (read, change, write) up to
    ``attempts`` times; a protected branch gets a pull request instead (see :func:`_pull_request`).
    """
    from github import GithubException

    branch = branch or repo.default_branch
    message = message if SKIP_CI in message else f"{message}\n\n{SKIP_CI}"
    try:
        return _commit(repo, path, change, message, branch, attempts=attempts)
    except GithubException as exc:
        if exc.status in (403, 409, 422) and _is_protected(repo, branch, exc):
            return _pull_request(repo, path, change, message, base=branch, head=pull_request_branch)
        raise _write_error(exc, path, branch) from exc


def _commit(
    repo: Repository, path: str, change: Callable[[str], str], message: str, branch: str, *, attempts: int
) -> CommitOutcome:
    """Read, change and write until the write is not stale; a refused write raises ``GithubException``."""
    written: str | None = None
    for attempt in range(1, attempts + 1):
        old, sha = _read(repo, path, branch)
        new = change(old)
        if new == old:
            # The branch holding what we wrote means our write landed and only its answer was lost.
            status = COMMITTED if written is not None and old == written else UNCHANGED
            return CommitOutcome(status, branch, attempts=attempt)
        written = new
        try:
            result = _write(repo, path, message, new, sha=sha, branch=branch)
        except Exception as exc:
            if not is_stale(exc):
                raise
            time.sleep(min(0.2 * attempt, 1.0))
            continue
        return CommitOutcome(COMMITTED, branch, result, attempts=attempt)
    raise GitHubError(
        f"cannot commit {path} to {branch}: it changed under us {attempts} times in a row; run the job again"
    )


def _read(repo: Repository, path: str, ref: str) -> tuple[str, str | None]:
    found = read_file(repo, path, ref)
    if found is None:
        return "", None
    try:
        return found.content.decode("utf-8"), found.sha
    except UnicodeDecodeError as exc:
        raise GitHubError(f"{path} on {ref} is not UTF-8 ({exc}); fix the file in the repository") from exc


def _write(repo: Repository, path: str, message: str, content: str, *, sha: str | None, branch: str) -> str:
    def put() -> dict[str, Any]:
        if sha is None:
            return repo.create_file(path, message, content, branch=branch)
        return repo.update_file(path, message, content, sha, branch=branch)

    # Repeating a write whose answer was lost is safe: it names the old sha, so it fails as stale.
    result = call(f"commit {path} to {branch}", put)
    return str(getattr(result["commit"], "sha", ""))


# "<path> does not match <sha>": the blob sha we sent is not the file's any more (observed, and GitHub's own
# example of a 409 for this endpoint). "is at <sha> but expected <sha>": the branch moved while GitHub wrote
# (observed: https://github.com/PyGithub/PyGithub/issues/1787). Both mean: read again and retry.
_STALE = re.compile(r"does not match [0-9a-f]{7,40}|is at [0-9a-f]{40} but expected [0-9a-f]{40}")


def is_stale(exc: Exception) -> bool:
    """A write that lost a race: the file changed (or was created) between our read and our write."""
    status = getattr(exc, "status", None)
    if status not in (409, 422):
        return False
    text = github_message(exc)
    if status == 422 and '"sha" wasn' in text:  # created by someone else after we read it as missing
        return True
    return status == 409 and _STALE.search(text) is not None


# Words of GitHub's answers to a write that a protection refused (status checks, reviews, rulesets).
_PROTECTION_WORDS = re.compile(
    r"protected branch|pull request|status checks? .*expected|approving review|review is required|rule violation",
    re.I,
)
# Ruleset rules that let a commit reach the branch anyway (https://docs.github.com/rest/repos/rules).
_HARMLESS_RULES = {"creation", "deletion", "non_fast_forward", "required_linear_history"}


def _is_protected(repo: Repository, branch: str, exc: GithubException) -> bool:
    """Whether a refused write was refused by a protection: the answer says so, the branch API marks the branch
    protected, or an active ruleset rule applies to it."""
    from github import GithubException

    if _PROTECTION_WORDS.search(github_message(exc)):
        return True
    try:
        if call(f"read branch {branch}", lambda: repo.get_branch(branch)).protected:
            return True
        url = f"{repo.url}/rules/branches/{quote(branch, safe='')}"
        _, rules = call(f"read the rules of {branch}", lambda: repo.requester.requestJsonAndCheck("GET", url))
    except (GithubException, GitHubError):
        return False
    return any(isinstance(rule, dict) and rule.get("type") not in _HARMLESS_RULES for rule in rules or ())


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
    hint = f"; grant 'permissions: contents: write, pull-requests: write' or allow the workflow to push to {base}"
    existing = _open_pull(repo, head, base, hint)
    if existing is None:
        sha = ask(f"read branch {base}", lambda: repo.get_branch(base).commit.sha, hint)
        _start_branch(repo, head, sha, hint)
    try:
        _commit(repo, path, change, message, head, attempts=MAX_ATTEMPTS)
    except GithubException as exc:
        raise GitHubError(
            f"{base} is protected and proposing the change on branch {head} failed: {github_message(exc)}{hint}"
        ) from exc
    if existing is not None:
        return CommitOutcome(PULL_REQUEST, base, url=existing.html_url, updated=True)
    body = (
        f"`{base}` is protected, so the image mirror proposes its update of `{path}` here. Merge it to record "
        "the images that were copied; until then later runs add to this pull request."
    )
    try:
        pull = call(
            f"open a pull request from {head}",
            lambda: repo.create_pull(base=base, head=head, title=message.splitlines()[0], body=body),
        )
    except GithubException as exc:
        text = github_message(exc).lower()
        if exc.status == 422 and "pull request already exists" in text:  # another run, or a lost answer
            found = _open_pull(repo, head, base, hint)
            if found is not None:
                return CommitOutcome(PULL_REQUEST, base, url=found.html_url, updated=True)
        if exc.status == 422 and "no commits between" in text:  # base already holds the change
            return CommitOutcome(UNCHANGED, base)
        if exc.status == 403 and "not permitted to create or approve pull requests" in text:
            raise GitHubError(
                f"{base} is protected and this repository does not let GitHub Actions open pull requests "
                f"({github_message(exc)}); turn on '{ACTIONS_PR_SETTING}' (Settings > Actions > General > Workflow "
                f"permissions; in an organisation, first in its settings), or open a pull request from the "
                f"branch {head}, which holds the change, by hand"
            ) from exc
        raise GitHubError(
            f"{base} is protected and opening a pull request from {head} failed: {github_message(exc)}{hint}"
        ) from exc
    return CommitOutcome(PULL_REQUEST, base, url=pull.html_url)


def _open_pull(repo: Repository, head: str, base: str, hint: str) -> PullRequest | None:
    owner = repo.owner.login
    pulls = ask(
        f"list the pull requests from {head}",
        lambda: list(repo.get_pulls(state="open", head=f"{owner}:{head}", base=base)),
        hint,
    )
    return pulls[0] if pulls else None


def _start_branch(repo: Repository, branch: str, sha: str, hint: str) -> None:
    """Point ``branch`` at ``sha``: create it, or move a leftover one there (its pull request is closed)."""
    from github import GithubException

    ref = f"refs/heads/{branch}"

    def move() -> bool:
        for found in repo.get_git_matching_refs(f"heads/{branch}"):
            if found.ref == ref:
                found.edit(sha, force=True)
                return True
        return False

    if ask(f"move branch {branch}", move, hint):
        return
    try:
        call(f"create branch {branch}", lambda: repo.create_git_ref(ref, sha))
    except GithubException as exc:
        if (
            exc.status == 422
            and "already exists" in github_message(exc).lower()
            and ask(f"move branch {branch}", move, hint)
        ):
            return  # created meanwhile (or our answer was lost)
        raise GitHubError(f"cannot create branch {branch}: {github_message(exc)}{hint}") from exc


def _write_error(exc: GithubException, path: str, branch: str) -> GitHubError:
    if exc.status in (401, 403):
        return GitHubError(
            f"cannot commit {path} to {branch}: the token may not write ({github_message(exc)}); grant the job "
            "'permissions: contents: write'"
        )
    return GitHubError(f"cannot commit {path} to {branch}: {github_message(exc)}")
