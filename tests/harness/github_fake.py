"""A small in-memory fake of the GitHub REST API, served on 127.0.0.1 for PyGithub (``base_url``).

It keeps repositories, branches, commits (a full tree of files each, blobs by their git id), pull requests and
issue comments in memory, answers with the JSON shapes PyGithub reads, paginates with ``Link`` headers, and
records every request for assertions. Every URL inside a payload starts with the server's own
``http://127.0.0.1:PORT``, as PyGithub requires.

Each behaviour names where it comes from: a documentation page, or "observed" with where the answer was seen.

Usage::

    fake = GitHubFake(token="ghs_fake")          # token=None accepts any Authorization header
    base_url = fake.start()
    fake.add_repo("octo/mirror", files={"mirror/required-images.txt": b"# images\\n"})
    head = fake.commit("octo/mirror", "feature", {"mirror/required-images.txt": b"# images\\nnginx:1.25\\n"})
    number = fake.open_pull("octo/mirror", head="feature")
    gh = Github(base_url=base_url, auth=Auth.Token("ghs_fake"), retry=None,
                seconds_between_requests=0, seconds_between_writes=0)
    ...
    fake.comments("octo/mirror", number)         # bodies of the PR's issue comments
    fake.requests                                # every request: method, path, query, headers, body
    fake.stop()

Forks: ``fake.fork("octo/mirror", "mallory")`` creates ``mallory/mirror``; commit to it and open the pull with
``head_repo="mallory/mirror"``; ``fake.delete_repo("mallory/mirror")`` deletes the fork (the pull request then
shows ``"head": {"repo": null}``). As on GitHub, a fork's commits can be read through the base repository with
``?ref=<sha>``.

Protection: ``fake.protect_branch(repo, branch, rule)`` refuses contents writes the way each kind of
protection does (see :data:`PROTECTIONS`). Outages: ``fake.fail(method, path_regex, kind, times=N)`` makes the
next N matching requests fail (see :meth:`GitHubFake.fail` for the kinds). :class:`CommitFake` adds a hook that
runs before a contents write (a concurrent commit).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import difflib
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

JSON = dict[str, Any]

DOCS = "https://docs.github.com/rest"

# How each kind of protection answers a contents write: status, message, whether GET /branches/{branch} says
# "protected": true, and the rules GET /rules/branches/{branch} lists.
PROTECTIONS: dict[str, tuple[int, str, bool, list[JSON]]] = {
    # Required status checks: observed, "2 of 2 required status checks are expected" (the original service's
    # repository; the same wording in https://github.com/kevgo/prettifier/issues/28 for the contents API).
    "checks": (
        409,
        "2 of 2 required status checks are expected. Changes must be made through a pull request.",
        True,
        [],
    ),
    # Required reviews: observed, 422 "... At least one approved review is required"
    # (https://github.com/47degrees/sbt-org-policies/issues/263; https://github.com/kevgo/prettifier/issues/50).
    "reviews": (422, "At least 1 approving review is required by reviewers with write access.", True, []),
    # A ruleset (https://docs.github.com/rest/repos/rules#get-rules-for-a-branch lists its rules); the answer
    # follows the GH013 "Repository rule violations found" that a push to such a branch gets (observed).
    # Rulesets are not branch protection: GET /branches/{branch} says "protected": false.
    "ruleset": (
        409,
        "Repository rule violations found\n\nChanges must be made through a pull request.\n\n",
        False,
        [{"type": "pull_request", "ruleset_source_type": "Repository", "ruleset_source": "octo/mirror"}],
    ),
    # A protected branch that restricts who may push: the installation token gets GitHub's generic refusal
    # of an integration (observed text: "Resource not accessible by integration").
    "restricted": (403, "Resource not accessible by integration", True, []),
}

# Rate limits (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api): GITHUB_TOKEN
# gets 1,000 requests per hour per repository, a personal access token 5,000; every answer carries
# x-ratelimit-limit, -remaining, -used, -reset (UTC epoch seconds) and -resource.
INSTALLATION_LIMIT = 1000
PERSONAL_LIMIT = 5000

MAX_COMMENT_CHARS = 65536  # observed, see _create_comment
MAX_PULL_FILES = 3000  # https://docs.github.com/rest/pulls/pulls#list-pull-requests-files
INLINE_LIMIT = 1024 * 1024  # https://docs.github.com/rest/repos/contents#get-repository-content


def blob_sha(content: bytes) -> str:
    """The git blob id of ``content`` (what the contents API calls ``sha``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_installation_token(token: str) -> bool:
    """``ghs_`` starts a GitHub App installation token such as GITHUB_TOKEN; ``ghp_`` a personal one
    (https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/)."""
    return token.startswith("ghs_")


@dataclass
class Commit:
    sha: str
    tree: dict[str, bytes]
    parent: str | None
    message: str


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    branches: dict[str, str] = field(default_factory=dict)
    protected: dict[str, str] = field(default_factory=dict)  # branch -> a key of PROTECTIONS
    fork_of: str | None = None
    private: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Pull:
    id: int
    number: int
    repo: str
    head_repo: str
    head_ref: str
    base_ref: str
    title: str
    body: str
    user: str
    state: str = "open"
    head_sha: str | None = None  # kept once the head repository is gone (refs/pull/N/head)


@dataclass
class Comment:
    id: int
    repo: str
    issue: int
    body: str
    user: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    method: str
    pattern: str
    kind: str
    times: int
    seconds: float


class FakeError(Exception):
    def __init__(self, status: int, message: str, *, errors: list[JSON] | None = None, docs: str = DOCS) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.docs = docs
        self.headers: dict[str, str] = {}


class GitHubFake:
    """The fake's state and server; see the module docstring."""

    def __init__(self, token: str | None = None, *, bot_login: str = "github-actions[bot]") -> None:
        self.token = token
        self.bot_login = bot_login
        self.repos: dict[str, Repo] = {}
        self.commits: dict[str, Commit] = {}
        self.blobs: dict[str, bytes] = {}
        self.pulls: dict[tuple[str, int], Pull] = {}
        self.issue_comments: dict[int, Comment] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._files_cache: dict[tuple[str, str, str], list[JSON]] = {}
        # Like GitHub, the contents API sends bigger files without content (encoding "none"); read them
        # through the raw media type or the git blobs API. Lower it in a test to exercise that path.
        self.inline_limit = INLINE_LIMIT
        # Settings > Actions > General > "Allow GitHub Actions to create and approve pull requests".
        self.actions_may_create_pulls = True
        limit = INSTALLATION_LIMIT if token is None or is_installation_token(token) else PERSONAL_LIMIT
        self.rate_limit = limit
        self.rate_used = 0
        self.rate_reset = int(time.time()) + 3600
        self.lock = threading.RLock()
        self._ids = itertools.count(1000)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="github-fake", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GitHubFake:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state helpers for tests -------------------------------------------------------------------------
    def add_repo(self, full_name: str, *, default_branch: str = "main", files: dict[str, bytes] | None = None) -> Repo:
        owner, name = full_name.split("/", 1)
        with self.lock:
            repo = Repo(next(self._ids), owner, name, default_branch)
            self.repos[full_name] = repo
            sha = self._new_commit(dict(files or {}), None, "initial commit", files or {})
            repo.branches[default_branch] = sha
            return repo

    def fork(self, full_name: str, owner: str) -> Repo:
        with self.lock:
            source = self.repos[full_name]
            repo = Repo(next(self._ids), owner, source.name, source.default_branch, fork_of=full_name)
            repo.branches = dict(source.branches)
            self.repos[repo.full_name] = repo
            return repo

    def delete_repo(self, full_name: str) -> None:
        """Delete a repository (a fork): its pull requests keep their head commit, their ``head.repo`` is null."""
        with self.lock:
            repo = self.repos.pop(full_name)
            for pull in self.pulls.values():
                if pull.head_repo == full_name and pull.head_sha is None:
                    pull.head_sha = repo.branches[pull.head_ref]

    def commit(
        self,
        full_name: str,
        branch: str,
        files: dict[str, bytes | None],
        *,
        message: str = "change",
        start: str | None = None,
    ) -> str:
        """Commit ``files`` (``None`` deletes) on ``branch``, created from ``start`` (default branch) when new."""
        with self.lock:
            repo = self.repos[full_name]
            parent = repo.branches.get(branch) or repo.branches[start or repo.default_branch]
            tree = dict(self.commits[parent].tree)
            changed: dict[str, bytes] = {}
            for path, content in files.items():
                if content is None:
                    tree.pop(path, None)
                else:
                    tree[path] = content
                    changed[path] = content
            sha = self._new_commit(tree, parent, message, changed)
            repo.branches[branch] = sha
            return sha

    def open_pull(
        self,
        full_name: str,
        *,
        head: str,
        base: str | None = None,
        head_repo: str | None = None,
        title: str = "Mirror images",
        body: str = "",
        user: str = "requester",
    ) -> int:
        with self.lock:
            repo = self.repos[full_name]
            number = 1 + max((n for (r, n) in self.pulls if r == full_name), default=0)
            self.pulls[(full_name, number)] = Pull(
                next(self._ids),
                number,
                full_name,
                head_repo or full_name,
                head,
                base or repo.default_branch,
                title,
                body,
                user,
            )
            return number

    def protect_branch(self, full_name: str, branch: str, rule: str = "checks") -> None:
        """Make contents writes to ``branch`` fail the way protection ``rule`` does (a key of PROTECTIONS)."""
        if rule not in PROTECTIONS:
            raise ValueError(f"unknown protection {rule!r}; one of {sorted(PROTECTIONS)}")
        self.repos[full_name].protected[branch] = rule

    def add_comment(self, full_name: str, issue: int, body: str, *, user: str = "someone") -> int:
        """An issue comment written by ``user`` (a bot when the login ends in ``[bot]``); returns its id."""
        with self.lock:
            now = _now()
            comment = Comment(next(self._ids), full_name, issue, body, user, now, now)
            self.issue_comments[comment.id] = comment
            return comment.id

    def fail(self, method: str, pattern: str, kind: str, *, times: int = 1, seconds: float = 0.0) -> None:
        """Make the next ``times`` requests ``method`` to a path matching ``pattern`` fail with ``kind``:

        - ``"500"``, ``"502"``, ``"503"``, ``"504"``: that status (5xx: "server errors",
          https://docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api); 502 and 504 come from
          GitHub's edge as an HTML page, not JSON (observed).
        - ``"reset"``: the connection is closed without an answer.
        - ``"stall"``: no answer for ``seconds``, then the connection is closed (GitHub ends requests it needs
          over 10 s for: https://docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api#timeouts).
        - ``"secondary"``: 403, a secondary rate limit with ``retry-after: <seconds>``; ``"secondary-429"``
          the same as 429; ``"secondary-reset"``: 403 with ``x-ratelimit-remaining: 0`` and
          ``x-ratelimit-reset`` ``seconds`` ahead (rate-limits-for-the-rest-api#exceeding-the-rate-limit).
        - ``"lost"``: the request is carried out, then answered 502: a write whose answer was lost.
        - ``"forbidden"``: 403 "Resource not accessible by integration", a token without the permission
          (observed; https://docs.github.com/actions/security-for-github-actions/security-guides/automatic-token-authentication
          lists what each permission allows).
        - ``"branch-moved"``: 409 "is at <sha> but expected <sha>", the contents API losing a race on the
          branch (observed: https://github.com/PyGithub/PyGithub/issues/1787).
        """
        self.faults.append(Fault(method, pattern, kind, times, seconds))

    def file(self, full_name: str, path: str, ref: str | None = None) -> bytes | None:
        with self.lock:
            repo = self.repos[full_name]
            return self.commits[self._resolve(repo, ref)].tree.get(path)

    def comments(self, full_name: str, issue: int) -> list[str]:
        with self.lock:
            return [c.body for c in self.issue_comments.values() if c.repo == full_name and c.issue == issue]

    def requests_to(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def history(self, full_name: str, branch: str) -> list[Commit]:
        """The commits of ``branch``, newest first."""
        with self.lock:
            found: list[Commit] = []
            current: str | None = self.repos[full_name].branches[branch]
            while current is not None:
                found.append(self.commits[current])
                current = self.commits[current].parent
            return found

    # -- internals -------------------------------------------------------------------------------------
    def _new_commit(self, tree: dict[str, bytes], parent: str | None, message: str, changed: dict[str, bytes]) -> str:
        shas = {path: blob_sha(content) for path, content in changed.items()}
        for path, content in changed.items():
            self.blobs[shas[path]] = content
        seed = json.dumps([parent, message, sorted(shas.items()), sorted(tree), next(self._ids)])
        sha = hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()
        self.commits[sha] = Commit(sha, tree, parent, message)
        return sha

    def _repo(self, owner: str, name: str) -> Repo:
        repo = self.repos.get(f"{owner}/{name}")
        if repo is None:
            raise FakeError(404, "Not Found")
        return repo

    def _resolve(self, repo: Repo, ref: str | None) -> str:
        ref = ref or repo.default_branch
        ref = ref.removeprefix("refs/heads/")
        if ref in repo.branches:
            return repo.branches[ref]
        if ref in self.commits:  # any commit of the fork network, like GitHub
            return ref
        raise FakeError(404, f"No commit found for the ref {ref}")

    def _pull(self, owner: str, name: str, number: int) -> Pull:
        pull = self.pulls.get((f"{owner}/{name}", number))
        if pull is None:
            raise FakeError(404, "Not Found")
        return pull

    def _pull_head(self, pull: Pull) -> str:
        if pull.head_sha is not None:
            return pull.head_sha
        return self.repos[pull.head_repo].branches[pull.head_ref]

    def _ancestors(self, sha: str) -> list[str]:
        found: list[str] = []
        current: str | None = sha
        while current is not None:
            found.append(current)
            current = self.commits[current].parent
        return found

    def _merge_base(self, base: str, head: str) -> str | None:
        ancestors = set(self._ancestors(base))
        return next((sha for sha in self._ancestors(head) if sha in ancestors), None)

    # -- JSON shapes ---------------------------------------------------------------------------------------
    def _user(self, login: str) -> JSON:
        kind = "Bot" if login.endswith("[bot]") else "User"
        return {
            "login": login,
            "id": abs(hash(login)) % 10**8,
            "type": kind,
            "url": f"{self.base_url}/users/{quote(login)}",
            "html_url": f"{self.base_url}/{quote(login)}",
        }

    def _repo_json(self, repo: Repo) -> JSON:
        api = f"{self.base_url}/repos/{repo.full_name}"
        data: JSON = {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user(repo.owner),
            "private": repo.private,
            "fork": repo.fork_of is not None,
            "url": api,
            "html_url": f"{self.base_url}/{repo.full_name}",
            "contents_url": api + "/contents/{+path}",
            "pulls_url": api + "/pulls{/number}",
            "default_branch": repo.default_branch,
            "permissions": {"admin": False, "push": True, "pull": True},
        }
        if repo.fork_of is not None and repo.fork_of in self.repos:
            data["parent"] = self._repo_json(self.repos[repo.fork_of])
        return data

    def _pull_json(self, pull: Pull) -> JSON:
        repo = self.repos[pull.repo]
        head_repo = self.repos.get(pull.head_repo)
        head_owner = pull.head_repo.split("/", 1)[0]
        api = f"{self.base_url}/repos/{pull.repo}"
        head_sha = self._pull_head(pull)
        base_sha = repo.branches[pull.base_ref]
        return {
            "id": pull.id,
            "node_id": f"PR_{pull.id}",
            "number": pull.number,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "user": self._user(pull.user),
            "draft": False,
            "merged": False,
            "url": f"{api}/pulls/{pull.number}",
            "html_url": f"{self.base_url}/{pull.repo}/pull/{pull.number}",
            "issue_url": f"{api}/issues/{pull.number}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            # https://docs.github.com/rest/pulls/pulls#get-a-pull-request: the count of changed files, which
            # may exceed what the files list shows.
            "changed_files": len(self._changed(pull)),  # cheap next to _pull_files
            "head": {
                "label": f"{head_owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": head_sha,
                "user": self._user(head_owner),
                # Observed: a pull request from a fork that was deleted has "repo": null.
                "repo": None if head_repo is None else self._repo_json(head_repo),
            },
            "base": {
                "label": f"{repo.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": base_sha,
                "user": self._user(repo.owner),
                "repo": self._repo_json(repo),
            },
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": _now(),
        }

    def _changed(self, pull: Pull) -> list[tuple[str, bytes | None, bytes | None]]:
        """The pull request's changes against the merge base of its head and base (a three-dot diff, as the
        files list and the pull request page show them)."""
        repo = self.repos[pull.repo]
        head_sha = self._pull_head(pull)
        merge_base = self._merge_base(repo.branches[pull.base_ref], head_sha)
        base = self.commits[merge_base].tree if merge_base is not None else {}
        head = self.commits[head_sha].tree
        return [(p, base.get(p), head.get(p)) for p in sorted(set(base) | set(head)) if base.get(p) != head.get(p)]

    def _pull_files(self, pull: Pull) -> list[JSON]:
        head_sha = self._pull_head(pull)
        key = (pull.repo, self.repos[pull.repo].branches[pull.base_ref], head_sha)
        if key not in self._files_cache:  # every page of the list asks again
            self._files_cache[key] = self._list_files(pull, head_sha)
        return self._files_cache[key]

    def _list_files(self, pull: Pull, head_sha: str) -> list[JSON]:
        files = []
        for path, old, new in self._changed(pull)[:MAX_PULL_FILES]:
            status = "added" if old is None else "removed" if new is None else "modified"
            old_lines = (old or b"").decode("utf-8", "replace").splitlines()
            new_lines = (new or b"").decode("utf-8", "replace").splitlines()
            diff = list(difflib.unified_diff(old_lines, new_lines, lineterm=""))[2:]
            added = sum(1 for line in diff if line.startswith("+"))
            deleted = sum(1 for line in diff if line.startswith("-"))
            files.append(
                {
                    "sha": blob_sha(new if new is not None else old or b""),
                    "filename": path,
                    "status": status,
                    "additions": added,
                    "deletions": deleted,
                    "changes": added + deleted,
                    "blob_url": f"{self.base_url}/{pull.repo}/blob/{head_sha}/{path}",
                    "raw_url": f"{self.base_url}/{pull.repo}/raw/{head_sha}/{path}",
                    "contents_url": f"{self.base_url}/repos/{pull.repo}/contents/{path}?ref={head_sha}",
                    "patch": "\n".join(diff),
                }
            )
        return files

    def _content_json(self, repo: Repo, path: str, content: bytes, ref: str) -> JSON:
        api = f"{self.base_url}/repos/{repo.full_name}/contents/{path}?ref={ref}"
        sha = blob_sha(content)
        inline = len(content) <= self.inline_limit
        return {
            "type": "file",
            # Over 1 MB: "encoding": "none" and empty content (contents API docs, "Between 1-100 MB"; observed).
            "encoding": "base64" if inline else "none",
            "size": len(content),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.encodebytes(content).decode("ascii") if inline else "",
            "sha": sha,
            "url": api,
            "git_url": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{sha}",
            "html_url": f"{self.base_url}/{repo.full_name}/blob/{ref}/{path}",
            # On github.com a raw.githubusercontent.com URL; served here by _Handler._raw.
            "download_url": f"{self.base_url}/{repo.full_name}/raw/{ref}/{path}",
            "_links": {"self": api, "git": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{sha}"},
        }

    def _commit_json(self, repo: Repo, sha: str) -> JSON:
        commit = self.commits[sha]
        api = f"{self.base_url}/repos/{repo.full_name}"
        return {
            "sha": sha,
            "node_id": f"C_{sha}",
            "url": f"{api}/commits/{sha}",
            "html_url": f"{self.base_url}/{repo.full_name}/commit/{sha}",
            "commit": {
                "message": commit.message,
                "url": f"{api}/git/commits/{sha}",
                "tree": {"sha": sha, "url": f"{api}/git/trees/{sha}"},
            },
            "parents": []
            if commit.parent is None
            else [{"sha": commit.parent, "url": f"{api}/commits/{commit.parent}"}],
        }

    def _comment_json(self, comment: Comment) -> JSON:
        api = f"{self.base_url}/repos/{comment.repo}"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self.base_url}/{comment.repo}/pull/{comment.issue}#issuecomment-{comment.id}",
            "issue_url": f"{api}/issues/{comment.issue}",
            "body": comment.body,
            "user": self._user(comment.user),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
        }

    def _ref_json(self, repo: Repo, branch: str) -> JSON:
        api = f"{self.base_url}/repos/{repo.full_name}"
        sha = repo.branches[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": f"REF_{branch}",
            "url": f"{api}/git/refs/heads/{branch}",
            "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
        }

    # -- routing ---------------------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: JSON, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        for route_method, pattern, handler in _ROUTES:
            if route_method != method:
                continue
            match = re.fullmatch(pattern, path)
            if match:
                with self.lock:
                    self._headers = headers or {}
                    result: tuple[int, Any] = handler(self, query, body, *match.groups())
                    return result
        raise FakeError(404, "Not Found")

    def rate_headers(self) -> dict[str, str]:
        with self.lock:
            if time.time() >= self.rate_reset:
                self.rate_used, self.rate_reset = 0, int(time.time()) + 3600
            return {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(max(self.rate_limit - self.rate_used, 0)),
                "X-RateLimit-Used": str(self.rate_used),
                "X-RateLimit-Reset": str(self.rate_reset),
                "X-RateLimit-Resource": "core",
            }

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.fullmatch(fault.pattern, path):
                    fault.times -= 1
                    return fault
        return None

    def _get_user(self, query: Any, body: JSON) -> tuple[int, Any]:
        # An installation token may not read /user: 403 "Resource not accessible by integration" (observed;
        # https://docs.github.com/rest/users/users#get-the-authenticated-user lists no installation tokens).
        if self.token is not None and is_installation_token(self.token):
            raise FakeError(403, "Resource not accessible by integration", docs=f"{DOCS}/users/users")
        return 200, self._user(self.bot_login)

    def _get_repo(self, query: Any, body: JSON, owner: str, name: str) -> tuple[int, Any]:
        return 200, self._repo_json(self._repo(owner, name))

    def _get_branch(self, query: Any, body: JSON, owner: str, name: str, branch: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        branch = unquote(branch)
        if branch not in repo.branches:
            raise FakeError(404, "Branch not found")
        api = f"{self.base_url}/repos/{repo.full_name}"
        rule = repo.protected.get(branch)
        return 200, {
            "name": branch,
            "commit": self._commit_json(repo, repo.branches[branch]),
            "protected": rule is not None and PROTECTIONS[rule][2],
            "_links": {"self": f"{api}/branches/{branch}", "html": f"{self.base_url}/{repo.full_name}/tree/{branch}"},
        }

    def _get_branch_rules(self, query: Any, body: JSON, owner: str, name: str, branch: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/repos/rules#get-rules-for-a-branch
        repo = self._repo(owner, name)
        rule = repo.protected.get(unquote(branch))
        return 200, [] if rule is None else list(PROTECTIONS[rule][3])

    def _get_pull(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        return 200, self._pull_json(self._pull(owner, name, int(number)))

    def _get_pull_files(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        return 200, self._pull_files(self._pull(owner, name, int(number)))

    def _create_pull(self, query: Any, body: JSON, owner: str, name: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/pulls/pulls#create-a-pull-request
        repo = self._repo(owner, name)
        if not self.actions_may_create_pulls and self.token is not None and is_installation_token(self.token):
            # Observed (https://github.com/danielroe/uppt/issues/11): the repository setting "Allow GitHub
            # Actions to create and approve pull requests" is off.
            raise FakeError(
                403,
                "GitHub Actions is not permitted to create or approve pull requests.",
                docs=f"{DOCS}/pulls/pulls#create-a-pull-request",
            )
        head = str(body.get("head", ""))
        head_repo = repo.full_name
        if ":" in head:
            head_owner, head = head.split(":", 1)
            head_repo = f"{head_owner}/{repo.name}"
        base = str(body.get("base", repo.default_branch))
        if head_repo not in self.repos or head not in self.repos[head_repo].branches:
            raise _validation("PullRequest", "invalid", "head", None)
        if base not in repo.branches:
            raise _validation("PullRequest", "invalid", "base", None)
        head_owner = head_repo.split("/", 1)[0]
        for pull in self.pulls.values():
            same = (pull.repo, pull.head_repo, pull.head_ref) == (repo.full_name, head_repo, head)
            if same and pull.state == "open":
                # Observed: https://github.com/vsoch/pull-request-action/issues/86
                raise _validation(
                    "PullRequest", "custom", None, f"A pull request already exists for {head_owner}:{head}."
                )
        head_sha = self.repos[head_repo].branches[head]
        if head_sha in self._ancestors(repo.branches[base]):
            # Observed: https://github.com/peter-evans/create-pull-request/issues/2105
            raise _validation("PullRequest", "custom", None, f"No commits between {base} and {head}")
        number = self.open_pull(
            repo.full_name,
            head=head,
            base=base,
            head_repo=head_repo,
            title=str(body.get("title", "")),
            body=str(body.get("body") or ""),
            user=self.bot_login,
        )
        return 201, self._pull_json(self.pulls[(repo.full_name, number)])

    def _list_pulls(self, query: Any, body: JSON, owner: str, name: str) -> tuple[int, Any]:
        """``GET /pulls`` with GitHub's filters: ``state`` (default open), ``head`` (``owner:branch``), ``base``
        (https://docs.github.com/rest/pulls/pulls#list-pull-requests)."""
        repo = self._repo(owner, name)
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        base = query.get("base", [None])[0]
        found = []
        for pull in sorted(self.pulls.values(), key=lambda p: p.number):
            if pull.repo != repo.full_name or state not in ("all", pull.state):
                continue
            if head is not None and head != f"{pull.head_repo.split('/', 1)[0]}:{pull.head_ref}":
                continue
            if base is not None and base != pull.base_ref:
                continue
            found.append(self._pull_json(pull))
        return 200, found

    def _wants_raw(self) -> bool:
        # https://docs.github.com/rest/repos/contents#get-repository-content: application/vnd.github.raw+json
        # (also the older application/vnd.github.raw and application/vnd.github.v3.raw) returns the bytes.
        accept = self._headers.get("Accept", "")
        return re.search(r"application/vnd\.github(\.v3)?\.raw", accept) is not None

    def _get_contents(self, query: Any, body: JSON, owner: str, name: str, path: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        ref = query.get("ref", [None])[0]
        sha = self._resolve(repo, ref)
        content = self.commits[sha].tree.get(unquote(path))
        if content is None:
            raise FakeError(404, "Not Found")
        if self._wants_raw():
            return 200, RawBody(content)
        return 200, self._content_json(repo, unquote(path), content, ref or repo.default_branch)

    def _get_blob(self, query: Any, body: JSON, owner: str, name: str, sha: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/git/blobs#get-a-blob: base64 JSON, or the bytes with the raw media type.
        repo = self._repo(owner, name)
        content = self.blobs.get(sha)
        if content is None:
            raise FakeError(404, "Not Found")
        if self._wants_raw():
            return 200, RawBody(content)
        return 200, {
            "sha": sha,
            "node_id": f"B_{sha}",
            "size": len(content),
            "url": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{sha}",
            "content": base64.encodebytes(content).decode("ascii"),
            "encoding": "base64",
        }

    def _put_contents(self, query: Any, body: JSON, owner: str, name: str, path: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/repos/contents#create-or-update-file-contents
        repo = self._repo(owner, name)
        path = unquote(path)
        branch = str(body.get("branch") or repo.default_branch)
        if branch not in repo.branches:
            raise FakeError(404, f"Branch {branch} not found")
        if not body.get("message"):
            raise _validation("Commit", "missing_field", "message", None)
        rule = repo.protected.get(branch)
        if rule is not None:
            status, text, _, _ = PROTECTIONS[rule]
            raise FakeError(status, text, docs="https://docs.github.com/articles/about-protected-branches")
        try:
            content = base64.b64decode(str(body["content"]), validate=True)
        except (KeyError, ValueError, binascii.Error) as exc:
            raise FakeError(422, "Invalid request.\n\ncontent is not valid Base64.") from exc
        current = self.commits[repo.branches[branch]].tree.get(path)
        given = body.get("sha")
        if current is not None and not given:
            raise FakeError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        # A stale sha: 409 "<path> does not match <sha>" (observed; the endpoint documents 409 Conflict).
        if current is not None and given != blob_sha(current):
            raise FakeError(409, f"{path} does not match {given}")
        if current is None and given:
            raise FakeError(409, f"{path} does not match {given}")
        sha = self.commit(repo.full_name, branch, {path: content}, message=str(body.get("message", "")))
        return (201 if current is None else 200), {
            "content": self._content_json(repo, path, content, branch),
            "commit": self._commit_json(repo, sha),
        }

    def _create_ref(self, query: Any, body: JSON, owner: str, name: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/git/refs#create-a-reference
        repo = self._repo(owner, name)
        branch = str(body["ref"]).removeprefix("refs/heads/")
        if branch in repo.branches:
            raise FakeError(422, "Reference already exists")
        if str(body["sha"]) not in self.commits:
            raise FakeError(422, "Object does not exist")
        repo.branches[branch] = str(body["sha"])
        return 201, self._ref_json(repo, branch)

    def _matching_refs(self, query: Any, body: JSON, owner: str, name: str, wanted: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/git/refs#list-matching-references (PyGithub sends heads%2F...)
        repo = self._repo(owner, name)
        wanted = unquote(wanted)
        return 200, [self._ref_json(repo, b) for b in sorted(repo.branches) if f"heads/{b}".startswith(wanted)]

    def _update_ref(self, query: Any, body: JSON, owner: str, name: str, branch: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/git/refs#update-a-reference
        repo = self._repo(owner, name)
        branch, sha = unquote(branch), str(body["sha"])
        if branch not in repo.branches:
            raise FakeError(422, "Reference does not exist")
        if sha not in self.commits:
            raise FakeError(422, "Object does not exist")
        if not body.get("force") and repo.branches[branch] not in self._ancestors(sha):
            raise FakeError(422, "Update is not a fast forward")
        repo.branches[branch] = sha
        return 200, self._ref_json(repo, branch)

    def _list_comments(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        found = [c for c in self.issue_comments.values() if c.repo == repo.full_name and c.issue == int(number)]
        return 200, [self._comment_json(c) for c in sorted(found, key=lambda c: c.id)]

    def _create_comment(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/issues/comments#create-an-issue-comment
        repo = self._repo(owner, name)
        self._pull(owner, name, int(number))
        text = str(body["body"])
        if len(text) > MAX_COMMENT_CHARS:
            # Observed: https://github.com/jmikedupont2/ai-ticket/issues/51
            raise _validation("IssueComment", "unprocessable", "data", "Body is too long (maximum is 65536 characters)")
        now = _now()
        comment = Comment(next(self._ids), repo.full_name, int(number), text, self.bot_login, now, now)
        self.issue_comments[comment.id] = comment
        return 201, self._comment_json(comment)

    def _get_comment(self, query: Any, body: JSON, owner: str, name: str, comment_id: str) -> tuple[int, Any]:
        comment = self.issue_comments.get(int(comment_id))
        if comment is None or comment.repo != f"{owner}/{name}":
            raise FakeError(404, "Not Found")
        return 200, self._comment_json(comment)

    def _edit_comment(self, query: Any, body: JSON, owner: str, name: str, comment_id: str) -> tuple[int, Any]:
        # https://docs.github.com/rest/issues/comments#update-an-issue-comment
        comment = self.issue_comments.get(int(comment_id))
        if comment is None or comment.repo != f"{owner}/{name}":
            raise FakeError(404, "Not Found")
        text = str(body["body"])
        if len(text) > MAX_COMMENT_CHARS:
            # Observed: https://github.com/suzuki-shunsuke/github-comment/issues/124 (edit-a-comment)
            raise _validation("IssueComment", "custom", "body", "body is too long (maximum is 65536 characters)")
        comment.body = text
        comment.updated_at = _now()
        return 200, self._comment_json(comment)


def _validation(resource: str, code: str, field: str | None, message: str | None) -> FakeError:
    """GitHub's 422 "Validation Failed" with one entry in ``errors`` (https://docs.github.com/rest#client-errors)."""
    error: JSON = {"resource": resource, "code": code}
    if field is not None:
        error["field"] = field
    if message is not None:
        error["message"] = message
    return FakeError(422, "Validation Failed", errors=[error])


@dataclass(frozen=True)
class RawBody:
    """Bytes answered as they are, with the raw media type (observed ``Content-Type``)."""

    content: bytes


_R = r"/repos/([^/]+)/([^/]+)"
# Each route, and the page of https://docs.github.com/rest that describes it.
_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", r"/user", GitHubFake._get_user),  # users/users#get-the-authenticated-user
    ("GET", _R, GitHubFake._get_repo),  # repos/repos#get-a-repository
    ("GET", _R + r"/branches/(.+)", GitHubFake._get_branch),  # branches/branches#get-a-branch
    ("GET", _R + r"/rules/branches/(.+)", GitHubFake._get_branch_rules),  # repos/rules#get-rules-for-a-branch
    ("GET", _R + r"/pulls/(\d+)", GitHubFake._get_pull),  # pulls/pulls#get-a-pull-request
    ("GET", _R + r"/pulls/(\d+)/files", GitHubFake._get_pull_files),  # pulls/pulls#list-pull-requests-files
    ("POST", _R + r"/pulls", GitHubFake._create_pull),  # pulls/pulls#create-a-pull-request
    ("GET", _R + r"/pulls", GitHubFake._list_pulls),  # pulls/pulls#list-pull-requests
    ("GET", _R + r"/contents/(.+)", GitHubFake._get_contents),  # repos/contents#get-repository-content
    ("PUT", _R + r"/contents/(.+)", GitHubFake._put_contents),  # repos/contents#create-or-update-file-contents
    ("GET", _R + r"/git/blobs/([0-9a-f]{40})", GitHubFake._get_blob),  # git/blobs#get-a-blob
    ("POST", _R + r"/git/refs", GitHubFake._create_ref),  # git/refs#create-a-reference
    ("GET", _R + r"/git/matching-refs/(.+)", GitHubFake._matching_refs),  # git/refs#list-matching-references
    ("PATCH", _R + r"/git/refs/heads/(.+)", GitHubFake._update_ref),  # git/refs#update-a-reference
    ("GET", _R + r"/issues/(\d+)/comments", GitHubFake._list_comments),  # issues/comments#list-issue-comments
    ("POST", _R + r"/issues/(\d+)/comments", GitHubFake._create_comment),  # issues/comments#create-an-issue-comment
    ("GET", _R + r"/issues/comments/(\d+)", GitHubFake._get_comment),  # issues/comments#get-an-issue-comment
    ("PATCH", _R + r"/issues/comments/(\d+)", GitHubFake._edit_comment),  # issues/comments#update-an-issue-comment
]

# Observed: https://github.com/KnpLabs/php-github-api/issues/1070
SECONDARY_MESSAGE = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
_EDGE_PAGE = b"<html><body><h1>%d</h1>We couldn't respond to your request in time.</body></html>"


class _Handler(BaseHTTPRequestHandler):
    owner: GitHubFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        fake = self.owner
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        fake.requests.append(Request(method, split.path, query, headers, raw))
        fault = fake._take_fault(method, split.path)
        if fault is not None and self._fault_first(fault):
            return
        raw_file = re.fullmatch(r"/([^/]+)/([^/]+)/raw/([^/]+)/(.+)", split.path)
        if split.path.startswith("/repos/"):
            raw_file = None
        try:
            # A download_url of a public repository needs no token (raw.githubusercontent.com; observed).
            if fake.token is not None and raw_file is None:
                auth = self.headers.get("Authorization", "")
                if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                    raise FakeError(401, "Bad credentials")
            with fake.lock:
                fake.rate_used += 1
                if fake.rate_used > fake.rate_limit:
                    # https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api
                    raise FakeError(403, "API rate limit exceeded for installation ID 1000.")
            if method == "GET" and raw_file is not None:
                owner, name, ref, path = raw_file.groups()
                status, data = 200, RawBody(fake.file(f"{owner}/{name}", unquote(path), ref) or b"")
            else:
                body = json.loads(raw) if raw else {}
                status, data = fake.handle(method, split.path, query, body, headers)
        except FakeError as exc:
            payload: JSON = {"message": exc.message}
            if exc.errors is not None:
                payload["errors"] = exc.errors
            payload["documentation_url"] = exc.docs
            payload["status"] = str(exc.status)
            self._send(exc.status, payload)
            return
        except (ValueError, KeyError) as exc:
            self._send(400, {"message": f"Problems parsing JSON: {exc}"})
            return
        if fault is not None and fault.kind == "lost":
            self._send(502, _EDGE_PAGE % 502, {"Content-Type": "text/html"})
            return
        extra: dict[str, str] = {}
        if isinstance(data, list):
            page, extra = self._paginate(split.path, query, data)
            self._send(status, page, extra)
            return
        self._send(status, data, extra)

    def _fault_first(self, fault: Fault) -> bool:
        """Answer with ``fault`` instead of the request; False when the request is to be carried out first."""
        kind = fault.kind
        if kind == "lost":
            return False
        if kind in ("reset", "stall"):
            if kind == "stall":
                time.sleep(fault.seconds)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if kind in ("502", "504"):
            self._send(int(kind), _EDGE_PAGE % int(kind), {"Content-Type": "text/html"})
        elif kind in ("500", "503"):
            self._send(int(kind), {"message": "Server Error" if kind == "500" else "Service Unavailable"})
        elif kind in ("secondary", "secondary-429"):
            self._send(
                429 if kind == "secondary-429" else 403,
                {
                    "message": SECONDARY_MESSAGE,
                    "documentation_url": f"{DOCS}/using-the-rest-api/rate-limits-for-the-rest-api"
                    "#about-secondary-rate-limits",
                },
                {"Retry-After": str(round(fault.seconds))},
            )
        elif kind == "secondary-reset":
            self._send(
                403,
                {"message": SECONDARY_MESSAGE},
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time() + fault.seconds))},
            )
        elif kind == "forbidden":
            self._send(403, {"message": "Resource not accessible by integration", "documentation_url": DOCS})
        elif kind == "branch-moved":
            self._send(409, {"message": f"is at {'a' * 40} but expected {'b' * 40}"})
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        return True

    def _paginate(self, path: str, query: dict[str, list[str]], items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        # https://docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api: per_page up to 100
        # (default 30), Link rel="next"/"last"/"prev"/"first".
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = max(int(query.get("page", ["1"])[0]), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        links = []

        def url(number: int) -> str:
            params = {k: v[0] for k, v in query.items() if k != "page"}
            params["page"] = str(number)
            return f"{self.owner.base_url}{path}?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))

        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        content_type = "application/json; charset=utf-8"
        payload: bytes
        if isinstance(data, RawBody):
            payload, content_type = data.content, "application/vnd.github.raw"
        elif isinstance(data, bytes):
            payload = data
        else:
            payload = json.dumps(data).encode()
        self.send_response(status)
        merged = {"Content-Type": content_type, **self.owner.rate_headers(), **(headers or {})}
        for key, value in merged.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


COMMIT_TOKEN = "ghs_commit_test"


class CommitFake(GitHubFake):
    """The fake with the commit tests' token and a hook that runs before a contents write (a concurrent commit)."""

    def __init__(self) -> None:
        super().__init__(token=COMMIT_TOKEN)
        self.before_put: list[Callable[[], object]] = []

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: JSON, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        if method == "PUT" and "/contents/" in path and self.before_put:
            self.before_put.pop(0)()
        return super().handle(method, path, query, body, headers)
