"""A small in-memory fake of the GitHub REST API, served on 127.0.0.1 for PyGithub (``base_url``).

It keeps repositories, branches (head commit per branch), commits (a full tree of files each), pull requests
and issue comments in memory, answers with the JSON shapes PyGithub reads, paginates with ``Link`` headers,
and records every request for assertions. Every URL inside a payload starts with the server's own
``http://127.0.0.1:PORT``, as PyGithub requires.

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

Fork pull requests: ``fake.fork("octo/mirror", "mallory")`` creates ``mallory/mirror``; commit to it and open
the pull with ``head_repo="mallory/mirror"``. As on GitHub, a fork's commits can be read through the base
repository with ``?ref=<sha>``.

Writes: ``PUT /contents`` checks the blob ``sha`` (a stale one answers 409), and ``protect_branch`` makes
writes to a branch answer 403 or 422 with GitHub's message. :class:`CommitFake` adds what the bot's
commit-back needs: git refs (create, list matching, update) and a hook that runs before a contents write (a
concurrent commit). ``GET /pulls`` filters by ``state``, ``head`` and ``base`` as GitHub does.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

JSON = dict[str, Any]

PROTECTED_MESSAGES = {
    403: "Resource not accessible by integration",
    422: "Changes must be made through a pull request.",
}


def blob_sha(content: bytes) -> str:
    """The git blob id of ``content`` (what the contents API calls ``sha``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    protected: dict[str, int] = field(default_factory=dict)
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


class FakeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GitHubFake:
    """The fake's state and server; see the module docstring."""

    def __init__(self, token: str | None = None, *, bot_login: str = "github-actions[bot]") -> None:
        self.token = token
        self.bot_login = bot_login
        self.repos: dict[str, Repo] = {}
        self.commits: dict[str, Commit] = {}
        self.pulls: dict[tuple[str, int], Pull] = {}
        self.issue_comments: dict[int, Comment] = {}
        self.requests: list[Request] = []
        # Like GitHub, the contents API sends bigger files without content (encoding "none"); read them
        # through the git blobs API. Lower it in a test to exercise that path with small files.
        self.inline_limit = 1024 * 1024
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
            sha = self._new_commit(dict(files or {}), None, "initial commit")
            repo.branches[default_branch] = sha
            return repo

    def fork(self, full_name: str, owner: str) -> Repo:
        with self.lock:
            source = self.repos[full_name]
            repo = Repo(next(self._ids), owner, source.name, source.default_branch, fork_of=full_name)
            repo.branches = dict(source.branches)
            self.repos[repo.full_name] = repo
            return repo

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
            for path, content in files.items():
                if content is None:
                    tree.pop(path, None)
                else:
                    tree[path] = content
            sha = self._new_commit(tree, parent, message)
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

    def protect_branch(self, full_name: str, branch: str, status: int = 422) -> None:
        """Make content writes to ``branch`` fail with ``status`` (403 or 422) and GitHub's message."""
        self.repos[full_name].protected[branch] = status

    def add_comment(self, full_name: str, issue: int, body: str, *, user: str = "someone") -> int:
        """An issue comment written by ``user`` (a bot when the login ends in ``[bot]``); returns its id."""
        with self.lock:
            now = _now()
            comment = Comment(next(self._ids), full_name, issue, body, user, now, now)
            self.issue_comments[comment.id] = comment
            return comment.id

    def file(self, full_name: str, path: str, ref: str | None = None) -> bytes | None:
        with self.lock:
            repo = self.repos[full_name]
            return self.commits[self._resolve(repo, ref)].tree.get(path)

    def comments(self, full_name: str, issue: int) -> list[str]:
        with self.lock:
            return [c.body for c in self.issue_comments.values() if c.repo == full_name and c.issue == issue]

    def requests_to(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    # -- internals -------------------------------------------------------------------------------------
    def _new_commit(self, tree: dict[str, bytes], parent: str | None, message: str) -> str:
        seed = json.dumps([parent, message, sorted((p, blob_sha(c)) for p, c in tree.items()), next(self._ids)])
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

    # -- JSON shapes ---------------------------------------------------------------------------------------
    def _user(self, login: str) -> JSON:
        kind = "Bot" if login.endswith("[bot]") else "User"
        return {
            "login": login,
            "id": abs(hash(login)) % 10**8,
            "type": kind,
            "url": f"{self.base_url}/users/{login}",
            "html_url": f"{self.base_url}/{login}",
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
        if repo.fork_of is not None:
            data["parent"] = self._repo_json(self.repos[repo.fork_of])
        return data

    def _pull_json(self, pull: Pull) -> JSON:
        repo = self.repos[pull.repo]
        head_repo = self.repos[pull.head_repo]
        api = f"{self.base_url}/repos/{pull.repo}"
        head_sha = head_repo.branches[pull.head_ref]
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
            "head": {
                "label": f"{head_repo.owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": head_sha,
                "user": self._user(head_repo.owner),
                "repo": self._repo_json(head_repo),
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

    def _pull_files(self, pull: Pull) -> list[JSON]:
        repo = self.repos[pull.repo]
        head_sha = self.repos[pull.head_repo].branches[pull.head_ref]
        base = self.commits[repo.branches[pull.base_ref]].tree
        head = self.commits[head_sha].tree
        files = []
        for path in sorted(set(base) | set(head)):
            old, new = base.get(path), head.get(path)
            if old == new:
                continue
            status = "added" if old is None else "removed" if new is None else "modified"
            old_lines = (old or b"").decode("utf-8", "replace").splitlines()
            new_lines = (new or b"").decode("utf-8", "replace").splitlines()
            diff = list(difflib.unified_diff(old_lines, new_lines, lineterm=""))[2:]
            added = sum(1 for line in diff if line.startswith("+"))
            deleted = sum(1 for line in diff if line.startswith("-"))
            ref_sha = head_sha if new is not None else repo.branches[pull.base_ref]
            files.append(
                {
                    "sha": blob_sha(new if new is not None else old or b""),
                    "filename": path,
                    "status": status,
                    "additions": added,
                    "deletions": deleted,
                    "changes": added + deleted,
                    "blob_url": f"{self.base_url}/{pull.repo}/blob/{ref_sha}/{path}",
                    "raw_url": f"{self.base_url}/{pull.repo}/raw/{ref_sha}/{path}",
                    "contents_url": f"{self.base_url}/repos/{pull.repo}/contents/{path}?ref={ref_sha}",
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
            "encoding": "base64" if inline else "none",
            "size": len(content),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.encodebytes(content).decode("ascii") if inline else "",
            "sha": sha,
            "url": api,
            "git_url": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{sha}",
            "html_url": f"{self.base_url}/{repo.full_name}/blob/{ref}/{path}",
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

    # -- routing ---------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: JSON) -> tuple[int, Any]:
        for route_method, pattern, handler in _ROUTES:
            if route_method != method:
                continue
            match = re.fullmatch(pattern, path)
            if match:
                with self.lock:
                    result: tuple[int, Any] = handler(self, query, body, *match.groups())
                    return result
        raise FakeError(404, "Not Found")

    def _get_user(self, query: Any, body: JSON) -> tuple[int, Any]:
        # An installation token (GITHUB_TOKEN) may not read /user; a personal access token reads its owner.
        if self.bot_login.endswith("[bot]"):
            raise FakeError(403, "Resource not accessible by integration")
        return 200, self._user(self.bot_login)

    def _get_repo(self, query: Any, body: JSON, owner: str, name: str) -> tuple[int, Any]:
        return 200, self._repo_json(self._repo(owner, name))

    def _get_branch(self, query: Any, body: JSON, owner: str, name: str, branch: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        if branch not in repo.branches:
            raise FakeError(404, "Branch not found")
        api = f"{self.base_url}/repos/{repo.full_name}"
        return 200, {
            "name": branch,
            "commit": self._commit_json(repo, repo.branches[branch]),
            "protected": branch in repo.protected,
            "_links": {"self": f"{api}/branches/{branch}", "html": f"{self.base_url}/{repo.full_name}/tree/{branch}"},
        }

    def _get_pull(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        return 200, self._pull_json(self._pull(owner, name, int(number)))

    def _get_pull_files(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        return 200, self._pull_files(self._pull(owner, name, int(number)))

    def _create_pull(self, query: Any, body: JSON, owner: str, name: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        head = str(body.get("head", ""))
        head_repo = repo.full_name
        if ":" in head:
            head_owner, head = head.split(":", 1)
            head_repo = f"{head_owner}/{repo.name}"
        base = str(body.get("base", repo.default_branch))
        if head_repo not in self.repos or head not in self.repos[head_repo].branches:
            raise FakeError(422, "Validation Failed: head does not exist")
        if base not in repo.branches:
            raise FakeError(422, "Validation Failed: base does not exist")
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
        """``GET /pulls`` with GitHub's filters: ``state`` (default open), ``head`` (``owner:branch``), ``base``."""
        repo = self._repo(owner, name)
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        base = query.get("base", [None])[0]
        found = []
        for pull in sorted(self.pulls.values(), key=lambda p: p.number):
            if pull.repo != repo.full_name or state not in ("all", pull.state):
                continue
            if head is not None and head != f"{self.repos[pull.head_repo].owner}:{pull.head_ref}":
                continue
            if base is not None and base != pull.base_ref:
                continue
            found.append(self._pull_json(pull))
        return 200, found

    def _get_contents(self, query: Any, body: JSON, owner: str, name: str, path: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        ref = query.get("ref", [None])[0]
        sha = self._resolve(repo, ref)
        content = self.commits[sha].tree.get(path)
        if content is None:
            raise FakeError(404, "Not Found")
        return 200, self._content_json(repo, path, content, ref or repo.default_branch)

    def _get_blob(self, query: Any, body: JSON, owner: str, name: str, sha: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        for commit in self.commits.values():
            for content in commit.tree.values():
                if blob_sha(content) == sha:
                    return 200, {
                        "sha": sha,
                        "node_id": f"B_{sha}",
                        "size": len(content),
                        "url": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{sha}",
                        "content": base64.encodebytes(content).decode("ascii"),
                        "encoding": "base64",
                    }
        raise FakeError(404, "Not Found")

    def _put_contents(self, query: Any, body: JSON, owner: str, name: str, path: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        branch = str(body.get("branch") or repo.default_branch)
        if branch not in repo.branches:
            raise FakeError(404, f"Branch {branch} not found")
        status = repo.protected.get(branch)
        if status is not None:
            raise FakeError(status, PROTECTED_MESSAGES.get(status, "Protected branch update failed"))
        try:
            content = base64.b64decode(str(body["content"]), validate=True)
        except (KeyError, ValueError) as exc:
            raise FakeError(422, "Invalid request.\n\ncontent is not valid Base64.") from exc
        current = self.commits[repo.branches[branch]].tree.get(path)
        given = body.get("sha")
        if current is not None and not given:
            raise FakeError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if current is not None and given != blob_sha(current):
            raise FakeError(409, f"{path} does not match {given}")
        if current is None and given:
            raise FakeError(409, f"{path} does not match {given}")
        sha = self.commit(repo.full_name, branch, {path: content}, message=str(body.get("message", "")))
        return (201 if current is None else 200), {
            "content": self._content_json(repo, path, content, branch),
            "commit": self._commit_json(repo, sha),
        }

    def _list_comments(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        found = [c for c in self.issue_comments.values() if c.repo == repo.full_name and c.issue == int(number)]
        return 200, [self._comment_json(c) for c in sorted(found, key=lambda c: c.id)]

    def _create_comment(self, query: Any, body: JSON, owner: str, name: str, number: str) -> tuple[int, Any]:
        repo = self._repo(owner, name)
        self._pull(owner, name, int(number))
        now = _now()
        comment = Comment(next(self._ids), repo.full_name, int(number), str(body["body"]), self.bot_login, now, now)
        self.issue_comments[comment.id] = comment
        return 201, self._comment_json(comment)

    def _get_comment(self, query: Any, body: JSON, owner: str, name: str, comment_id: str) -> tuple[int, Any]:
        comment = self.issue_comments.get(int(comment_id))
        if comment is None or comment.repo != f"{owner}/{name}":
            raise FakeError(404, "Not Found")
        return 200, self._comment_json(comment)

    def _edit_comment(self, query: Any, body: JSON, owner: str, name: str, comment_id: str) -> tuple[int, Any]:
        comment = self.issue_comments.get(int(comment_id))
        if comment is None or comment.repo != f"{owner}/{name}":
            raise FakeError(404, "Not Found")
        comment.body = str(body["body"])
        comment.updated_at = _now()
        return 200, self._comment_json(comment)


_R = r"/repos/([^/]+)/([^/]+)"
_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", r"/user", GitHubFake._get_user),
    ("GET", _R, GitHubFake._get_repo),
    ("GET", _R + r"/branches/(.+)", GitHubFake._get_branch),
    ("GET", _R + r"/pulls/(\d+)", GitHubFake._get_pull),
    ("GET", _R + r"/pulls/(\d+)/files", GitHubFake._get_pull_files),
    ("POST", _R + r"/pulls", GitHubFake._create_pull),
    ("GET", _R + r"/pulls", GitHubFake._list_pulls),
    ("GET", _R + r"/contents/(.+)", GitHubFake._get_contents),
    ("PUT", _R + r"/contents/(.+)", GitHubFake._put_contents),
    ("GET", _R + r"/git/blobs/([0-9a-f]{40})", GitHubFake._get_blob),
    ("GET", _R + r"/issues/(\d+)/comments", GitHubFake._list_comments),
    ("POST", _R + r"/issues/(\d+)/comments", GitHubFake._create_comment),
    ("GET", _R + r"/issues/comments/(\d+)", GitHubFake._get_comment),
    ("PATCH", _R + r"/issues/comments/(\d+)", GitHubFake._edit_comment),
]


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
        fake.requests.append(Request(method, split.path, query, dict(self.headers.items()), raw))
        try:
            if fake.token is not None:
                auth = self.headers.get("Authorization", "")
                if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                    raise FakeError(401, "Bad credentials")
            body = json.loads(raw) if raw else {}
            status, data = fake.handle(method, split.path, query, body)
        except FakeError as exc:
            self._send(exc.status, {"message": exc.message, "documentation_url": "https://docs.github.com/rest"})
            return
        except (ValueError, KeyError) as exc:
            self._send(400, {"message": f"Problems parsing JSON: {exc}"})
            return
        headers: dict[str, str] = {}
        if isinstance(data, list):
            data, headers = self._paginate(split.path, query, data)
        self._send(status, data, headers)

    def _paginate(self, path: str, query: dict[str, list[str]], items: list[Any]) -> tuple[list[Any], dict[str, str]]:
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
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
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
    """The fake plus git refs (create, list matching, update) and a hook that runs before a contents write."""

    def __init__(self) -> None:
        super().__init__(token=COMMIT_TOKEN)
        self.before_put: list[Callable[[], object]] = []

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> tuple[int, Any]:
        refs = re.fullmatch(r"/repos/([^/]+)/([^/]+)/git/refs", path)
        if method == "POST" and refs:
            with self.lock:
                repo = self._repo(*refs.groups())
                branch = str(body["ref"]).removeprefix("refs/heads/")
                if branch in repo.branches:
                    raise FakeError(422, "Reference already exists")
                repo.branches[branch] = str(body["sha"])
                api = f"{self.base_url}/repos/{repo.full_name}"
                return 201, {
                    "ref": body["ref"],
                    "url": f"{api}/git/refs/heads/{branch}",
                    "object": {"type": "commit", "sha": body["sha"], "url": f"{api}/git/commits/{body['sha']}"},
                }
        matching = re.fullmatch(r"/repos/([^/]+)/([^/]+)/git/matching-refs/(.+)", path)
        if method == "GET" and matching:
            with self.lock:
                repo = self._repo(*matching.groups()[:2])
                wanted = unquote(matching.group(3))  # PyGithub sends heads%2F...
                return 200, [
                    self._ref_json(repo, branch)
                    for branch in sorted(repo.branches)
                    if f"heads/{branch}".startswith(wanted)
                ]
        update = re.fullmatch(r"/repos/([^/]+)/([^/]+)/git/refs/heads/(.+)", path)
        if method == "PATCH" and update:
            with self.lock:
                repo = self._repo(*update.groups()[:2])
                branch, sha = update.group(3), str(body["sha"])
                if branch not in repo.branches:
                    raise FakeError(422, "Reference does not exist")
                if sha not in self.commits:
                    raise FakeError(422, "Object does not exist")
                if not body.get("force") and not self._descends(sha, repo.branches[branch]):
                    raise FakeError(422, "Update is not a fast forward")
                repo.branches[branch] = sha
                return 200, self._ref_json(repo, branch)
        if method == "PUT" and "/contents/" in path and self.before_put:
            self.before_put.pop(0)()
        return super().handle(method, path, query, body)

    def _ref_json(self, repo: Repo, branch: str) -> dict[str, Any]:
        api = f"{self.base_url}/repos/{repo.full_name}"
        sha = repo.branches[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": f"REF_{branch}",
            "url": f"{api}/git/refs/heads/{branch}",
            "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
        }

    def _descends(self, sha: str, ancestor: str) -> bool:
        current: str | None = sha
        while current is not None:
            if current == ancestor:
                return True
            current = self.commits[current].parent
        return False
