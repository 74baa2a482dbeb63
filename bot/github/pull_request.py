"""GitHub adapter over PyGithub: read a pull request's list files as data, keep one sticky comment.

Nothing here checks out or runs code from the pull request: file contents come through the REST API at the
head and base commits and are handed to the validation as bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import ConfigError, GitHubError, ListFileError
from bot.github.api import DEFAULT_API_URL, ask, call, connect, message
from bot.github.contents import read_file
from bot.settings import Settings
from bot.validate import ListChange

if TYPE_CHECKING:
    from github import Github
    from github.PullRequest import PullRequest
    from github.Repository import Repository

__all__ = ["DEFAULT_API_URL", "PullRequestEvent", "PullRequestFiles", "connect"]

# GitHub lists at most this many files of a pull request
# (https://docs.github.com/rest/pulls/pulls#list-pull-requests-files).
MAX_LISTED_FILES = 3000


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    """The pull request a workflow run is about, from ``GITHUB_EVENT_PATH`` and ``GITHUB_REPOSITORY``."""

    repository: str
    number: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PullRequestEvent:
        repository = settings.github_repository
        path = settings.event_path
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


class PullRequestFiles:
    """One pull request: its commits, the list files it changes, and its sticky comment."""

    def __init__(self, github: Github, repository: str, number: int) -> None:
        def load() -> tuple[Repository, PullRequest]:
            repo = github.get_repo(repository)
            return repo, repo.get_pull(number)

        self._github = github
        self.repo, self.pull = ask(f"read pull request {repository}#{number}", load)
        self.number = number
        self.head_sha: str = self.pull.head.sha
        self.base_sha: str = self.pull.base.sha
        # A fork deleted after the pull request was opened leaves "head": {"repo": null}; its commits stay
        # readable through the base repository.
        head_repo = self.pull.head.repo
        self.is_fork = head_repo is None or head_repo.full_name != self.repo.full_name

    def changed_paths(self) -> dict[str, str] | None:
        """Every file the pull request touches: path -> status (added, modified, removed, renamed...).

        ``None`` when GitHub's list is cut at its 3,000 files and a list file may be missing from it.
        """

        def listing() -> dict[str, str]:
            changed: dict[str, str] = {}
            for item in self.pull.get_files():
                changed[item.filename] = item.status
                previous = getattr(item, "previous_filename", None)
                if previous:
                    changed[previous] = "removed"
            return changed

        changed = ask(f"list the files of pull request #{self.number}", listing)
        total = self.pull.changed_files
        if len(changed) >= MAX_LISTED_FILES or (isinstance(total, int) and total > len(changed)):
            return None
        return changed

    def read(self, path: str, ref: str) -> bytes | None:
        """The file at ``ref`` as bytes, ``None`` when it does not exist there.

        A file over :data:`~bot.lists.MAX_LIST_BYTES` is refused with :class:`ListFileError` before its content
        is downloaded (the contents API names the size first).
        """
        found = read_file(self.repo, path, ref)
        return None if found is None else found.content

    def list_changes(self, paths: Iterable[str]) -> list[ListChange]:
        """Base and head content of each of ``paths`` that the pull request changes."""
        changed = self.changed_paths()
        changes = []
        for path in paths:
            if changed is not None and path not in changed:
                continue
            base = self.read(path, self.base_sha)
            try:
                head = None if changed is not None and changed[path] == "removed" else self.read(path, self.head_sha)
            except ListFileError as exc:
                # The pull request made the file too big: the validation reports it; nothing of it is read.
                changes.append(ListChange(path, base, None, refused=exc.message))
                continue
            if changed is None and head == base:
                continue  # not in GitHub's cut list and not changed either
            changes.append(ListChange(path, base, head))
        return changes

    def _own_login(self) -> str | None:
        """The login the token acts as, or ``None`` for an installation token (which may not read /user)."""
        from github import GithubException

        try:
            return str(call("read the token's user", lambda: self._github.get_user().login))
        except GithubException:
            return None

    def upsert_comment(self, body: str, marker: str, *, create: bool = True) -> str:
        """Update the comment that carries ``marker`` (posted by a bot or the token's own user), or create it.

        Returns its URL; with ``create=False`` only an existing comment is updated (``""`` when there is none).
        A try whose answer was lost is safe to repeat: the next one finds the comment by its marker.
        """
        from github import GithubException

        def upsert() -> str:
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
            return str(self.pull.create_issue_comment(body).html_url)

        try:
            return call(f"write the comment on #{self.number}", upsert)
        except GithubException as exc:
            hint = ""
            if exc.status in (403, 404):
                hint = "; the workflow needs 'permissions: pull-requests: write'"
            raise GitHubError(f"cannot write the comment on #{self.number}: {message(exc)}{hint}") from exc
