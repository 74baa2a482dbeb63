"""Read a file from a repository through the REST API, at any size up to the list limit.

The contents API names a file's blob ``sha`` and size, and carries its bytes inline only up to 1 MB; a bigger
file comes with ``"encoding": "none"`` and no content
(https://docs.github.com/rest/repos/contents#get-repository-content, "Between 1-100 MB"). Its bytes are then
read from the git blobs API by that same ``sha`` (https://docs.github.com/rest/git/blobs#get-a-blob, up to
100 MB): a blob is addressed by its content, so the bytes always belong to the ``sha`` a commit-back later
names as the version it replaces, even when the branch moves between the two requests. The blob comes as
base64 JSON, byte-exact; the raw media type would hand PyGithub a body whose character set it has to guess.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import GitHubError, ListFileError
from bot.github.api import call, message
from bot.lists import MAX_LIST_BYTES, too_large_message

if TYPE_CHECKING:
    from github.Repository import Repository


@dataclass(frozen=True, slots=True)
class RemoteFile:
    content: bytes
    sha: str  # the git blob id: what a contents API write names as the version it replaces


def read_file(repo: Repository, path: str, ref: str, *, max_bytes: int = MAX_LIST_BYTES) -> RemoteFile | None:
    """``path`` at ``ref`` (a branch or commit), ``None`` when it does not exist there.

    A file over ``max_bytes`` is refused with :class:`~bot.errors.ListFileError` before its bytes are read.
    """
    from github import GithubException

    where = f"{path} at {ref[:12] if len(ref) == 40 else ref}"
    try:
        found = call(f"read {where}", lambda: repo.get_contents(path, ref=ref))
    except GithubException as exc:
        if exc.status == 404:
            return None
        raise GitHubError(f"cannot read {where}: {message(exc)}") from exc
    if isinstance(found, list):
        raise GitHubError(f"{path} is a directory at {ref}; it must be a list file")
    if found.size > max_bytes:
        raise ListFileError(too_large_message(path, found.size))
    if found.encoding == "base64":
        return RemoteFile(_decode(found.content or "", where), found.sha)
    try:
        blob = call(f"read {where}", lambda: repo.get_git_blob(found.sha))
    except GithubException as exc:
        raise GitHubError(f"cannot read {where}: {message(exc)}") from exc
    return RemoteFile(_decode(blob.content, where), found.sha)


def _decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError) as exc:
        raise GitHubError(f"cannot read {where}: GitHub's answer did not decode ({exc}); run the job again") from exc
