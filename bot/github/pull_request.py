"""GitHub adapter over PyGithub: read a pull request's list files as data, keep one sticky comment.

Nothing here checks out or runs code from the pull request: file contents come through the REST API at the
head and base commits and are handed to the validation as bytes.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError, GitHubError, ListFileError
from bot.lists import MAX_LIST_BYTES, too_large_message
from bot.validate import ListChange

if TYPE_CHECKING:
    from github import Github
    from github.PullRequest import PullRequest
    from github.Repository import Repository

DEFAULT_API_URL = "https://api.github.com"


def connect(api_url: str, token: str, *, retry: bool = True) -> Github:
    """A PyGithub client for ``api_url`` (``GITHUB_API_URL`` in Actions; GitHub Enterprise works too)."""
    from github import Auth, Github

    kwargs: dict[str, Any] = {} if retry else {"retry": None}
    return Github(
        base_url=api_url.rstrip("/"),
        auth=Auth.Token(token),
        seconds_between_requests=0,
        seconds_between_writes=0,
        per_page=100,
        **kwargs,
    )


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    """The pull request a workflow run is about, from ``GITHUB_EVENT_PATH`` and ``GITHUB_REPOSITORY``."""

    repository: str
    number: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> PullRequestEvent:
        environ = os.environ if environ is None else environ
        repository = environ.get("GITHUB_REPOSITORY", "")
        path = environ.get("GITHUB_EVENT_PATH", "")
        if not repository or not path:
            raise ConfigError(
                "validate-pr runs in a pull_request_target workflow: GITHUB_REPOSITORY and GITHUB_EVENT_PATH "
                "must be set (or pass --repository and --pull)"
            )
        try:
            event = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the workflow event {path}: {exc}") from exc
        number = event.get("number") if isinstance(event, dict) else None
        pull = event.get("pull_request") if isinstance(event, dict) else None
        if not isinstance(number, int) and isinstance(pull, dict):
            number = pull.get("number")
        if not isinstance(number, int):
            raise ConfigError("the workflow event is not about a pull request; run validate-pr on pull_request_target")
        return cls(repository, number)


def _message(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    status = getattr(exc, "status", None)
    text = data.get("message") if isinstance(data, dict) else None
    return f"{status} {text or exc.__class__.__name__}" if status else str(exc)


class PullRequestFiles:
    """One pull request: its commits, the list files it changes, and its sticky comment."""

    def __init__(self, github: Github, repository: str, number: int) -> None:
        from github import GithubException

        self._error = GithubException
        self._github = github
        try:
            self.repo: Repository = github.get_repo(repository)
            self.pull: PullRequest = self.repo.get_pull(number)
        except GithubException as exc:
            raise GitHubError(f"cannot read pull request {repository}#{number}: {_message(exc)}") from exc
        self.number = number
        self.head_sha: str = self.pull.head.sha
        self.base_sha: str = self.pull.base.sha
        head_repo = self.pull.head.repo
        self.is_fork = head_repo is None or head_repo.full_name != self.repo.full_name

    def changed_paths(self) -> dict[str, str]:
        """Every file the pull request touches: path -> status (added, modified, removed, renamed...)."""
        try:
            changed: dict[str, str] = {}
            for item in self.pull.get_files():
                changed[item.filename] = item.status
                previous = getattr(item, "previous_filename", None)
                if previous:
                    changed[previous] = "removed"
            return changed
        except self._error as exc:
            raise GitHubError(f"cannot list the files of pull request #{self.number}: {_message(exc)}") from exc

    def read(self, path: str, ref: str) -> bytes | None:
        """The file at ``ref`` as bytes, ``None`` when it does not exist there.

        A file over :data:`~bot.lists.MAX_LIST_BYTES` is refused with :class:`ListFileError` before its content
        is downloaded (the contents API names the size first).
        """
        try:
            content = self.repo.get_contents(path, ref=ref)
        except self._error as exc:
            if exc.status == 404:
                return None
            raise GitHubError(f"cannot read {path} at {ref[:12]}: {_message(exc)}") from exc
        if isinstance(content, list):
            raise GitHubError(f"{path} is a directory at {ref[:12]}; it must be a list file")
        if content.size > MAX_LIST_BYTES:
            raise ListFileError(too_large_message(path, content.size))
        if content.encoding == "base64":
            return content.decoded_content
        try:
            blob = self.repo.get_git_blob(content.sha)
        except self._error as exc:
            raise GitHubError(f"cannot read {path} at {ref[:12]}: {_message(exc)}") from exc
        return base64.b64decode(blob.content)

    def list_changes(self, paths: Iterable[str]) -> list[ListChange]:
        """Base and head content of each of ``paths`` that the pull request changes."""
        changed = self.changed_paths()
        changes = []
        for path in paths:
            if path not in changed:
                continue
            base = self.read(path, self.base_sha)
            try:
                head = None if changed[path] == "removed" else self.read(path, self.head_sha)
            except ListFileError as exc:
                # The pull request made the file too big: the validation reports it; nothing of it is read.
                changes.append(ListChange(path, base, None, refused=exc.message))
                continue
            changes.append(ListChange(path, base, head))
        return changes

    def _own_login(self) -> str | None:
        """The login the token acts as, or ``None`` for an installation token (which may not read /user)."""
        try:
            return str(self._github.get_user().login)
        except self._error:
            return None

    def upsert_comment(self, body: str, marker: str, *, create: bool = True) -> str:
        """Update the comment that carries ``marker`` (posted by a bot or the token's own user), or create it.

        Returns its URL; with ``create=False`` only an existing comment is updated (``""`` when there is none).
        """
        try:
            marked = [c for c in self.pull.get_issue_comments() if marker in (c.body or "") and c.user is not None]
            ours = [c for c in marked if c.user.type == "Bot"]
            if not ours and marked:
                # A personal access token comments as its owner, a user: find that user's comment, no one else's.
                own = self._own_login()
                ours = [c for c in marked if own is not None and c.user.login == own]
            for comment in ours[:1]:
                if comment.body != body:
                    comment.edit(body)
                return str(comment.html_url)
            if not create:
                return ""
            created = self.pull.create_issue_comment(body)
        except self._error as exc:
            hint = ""
            if exc.status in (403, 404):
                hint = "; the workflow needs 'permissions: pull-requests: write'"
            raise GitHubError(f"cannot write the comment on #{self.number}: {_message(exc)}{hint}") from exc
        return str(created.html_url)
