"""Every hostile line of the catalogue in one pull request, through ``validate-pr`` in this process.

The GitHub fake and a real registry (for two valid control lines) run on loopback. Every name lookup and
connection the bot makes is recorded: only those two servers may be contacted, never an address a line names.
The sticky comment must stay well-formed: one marker, one table row per added line, no HTML, mention, link,
broken table or open code span made of pull request text.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.lists import MAX_LIST_BYTES
from bot.report.markdown import escape_markdown
from tests.data.hostile import workflow_commands
from tests.data.hostile.catalogue import CATALOGUE, Case
from tests.data.hostile.comment_checks import assert_well_formed, rows_and_hidden
from tests.harness import figures
from tests.harness.github_fake import GitHubFake
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer

REPO = "octo/mirror"
REQUIRED = "mirror/required-images.txt"
TOKEN = "ghs_hostileFAKEtoken0123456789"
TARGET = "mirror.example.com"
HEADER = b"# Images to mirror, one per line.\n"


class ConnectionSpy:
    """Records every lookup and connection of this process; refuses any peer that is not expected."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, allowed: set[tuple[str, int]]) -> None:
        self.allowed = allowed
        self.peers: list[tuple[str, int]] = []
        self.refused: list[Any] = []
        self.lookups: list[str] = []
        real_connect = socket.socket.connect
        real_getaddrinfo = socket.getaddrinfo

        def connect(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                peer = (str(address[0]), int(address[1]))
                if peer not in self.allowed:
                    self.refused.append(address)
                    raise ConnectionRefusedError(f"test: {address} is not an expected peer")
                self.peers.append(peer)
            real_connect(sock, address)

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            self.lookups.append(name)
            if name != "127.0.0.1":
                raise socket.gaierror(f"test: no lookup allowed of {name}")
            return real_getaddrinfo(host, port, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    checkout = tmp_path / "checkout"
    (checkout / "mirror").mkdir(parents=True)
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    yield checkout


def expected_issue(case: Case) -> tuple[int, str]:
    """(col, words) of the one issue of ``case``'s line in a pull request whose rules allow no public registry."""
    if case.problems:
        ((_, col, words),) = case.problems
        return col, words
    line = case.pr_line or b""
    return len(line) - len(line.lstrip(b" \t")) + 1, "is not allowed"


@dataclass
class Run:
    code: int
    out: str
    err: str
    comments: list[str]
    summary: str
    outputs: str
    spy: ConnectionSpy
    fake: GitHubFake
    expected_peers: set[tuple[str, int]]

    @property
    def result(self) -> dict[str, Any]:
        found = re.findall(r"^result<<(\S+)\n(.*?)\n\1$", self.outputs, re.M | re.S)
        data: dict[str, Any] = json.loads(found[0][1])
        return data


@pytest.fixture
def validate_pr(
    workdir: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[bytes], Run]:
    """Open a pull request whose required list is ``content`` and run ``validate-pr`` on it, in this process."""
    (workdir / "mirror" / "config.yml").write_text(
        f"target: {{registry: {TARGET}}}\n"
        f"rules:\n  - {{source: '{registry.host}', target: up}}\n"
        "limits:\n  max_new_lines: 1000\n"
    )
    (workdir / "mirror" / "mirrored-images.txt").write_text("")
    event = workdir.parent / "event.json"
    outputs, summary = workdir.parent / "outputs.txt", workdir.parent / "summary.md"

    def run(content: bytes) -> Run:
        with GitHubFake(token=TOKEN) as fake:
            fake.add_repo(REPO, files={REQUIRED: HEADER, "mirror/mirrored-images.txt": b""})
            fake.commit(REPO, "hostile", {REQUIRED: content})
            number = fake.open_pull(REPO, head="hostile", user="mallory")
            event.write_text(json.dumps({"number": number, "pull_request": {"number": number}}))
            outputs.write_text("")
            summary.write_text("")
            for name, value in {
                "GITHUB_ACTIONS": "true",
                "GITHUB_EVENT_PATH": str(event),
                "GITHUB_REPOSITORY": REPO,
                "GITHUB_API_URL": fake.base_url,
                "GITHUB_TOKEN": TOKEN,
                "GITHUB_OUTPUT": str(outputs),
                "GITHUB_STEP_SUMMARY": str(summary),
            }.items():
                monkeypatch.setenv(name, value)
            peers = {("127.0.0.1", int(fake.base_url.rsplit(":", 1)[1].split("/")[0])), ("127.0.0.1", registry.port)}
            with pytest.MonkeyPatch.context() as patch:
                spy = ConnectionSpy(patch, peers)
                code = main(["validate-pr"])
            out, err = capsys.readouterr()
            comments = fake.comments(REPO, number)
        return Run(code, out, err, comments, summary.read_text(), outputs.read_text(), spy, fake, peers)

    return run


def test_every_hostile_line_in_one_pull_request(validate_pr: Callable[[bytes], Run], registry: RegistryServer) -> None:
    push_image(registry, "team/app", "v1")
    push_image(registry, "team/app", "v2", seed=1)
    controls = [f"{registry.host}/team/app:v1".encode(), f"{registry.host}/team/app:v2".encode()]
    cases = [case for case in CATALOGUE if case.pr_line is not None]
    lines = [case.pr_line for case in cases if case.pr_line is not None]

    run = validate_pr(HEADER + b"".join(line + b"\n" for line in [controls[0], *lines, controls[1]]))

    # Nothing but the GitHub fake and the test registry was looked up or contacted.
    assert run.spy.refused == []
    assert set(run.spy.lookups) == {"127.0.0.1"}
    assert set(run.spy.peers) == run.expected_peers
    assert run.code == 1

    result = run.result
    by_line = {line["line"]: line for line in result["lines"]}
    assert by_line[2]["status"] == by_line[len(lines) + 3]["status"] == "ok"
    expected_rows = {2, len(lines) + 3}
    for number_in_file, case in enumerate(cases, start=3):
        if not case.problems and not case.targets:
            assert number_in_file not in by_line  # a comment: no row
            continue
        expected_rows.add(number_in_file)
        row = by_line[number_in_file]
        col, words = expected_issue(case)
        (issue,) = row["issues"]
        assert (row["status"], issue["col"]) == ("error", col), (case.name, row)
        assert words in issue["message"], (case.name, issue["message"])
    assert set(by_line) == expected_rows
    assert result["errors"] == len(expected_rows) - 2

    # The comment and the job summary: well-formed, every added line accounted for.
    (comment,) = run.comments
    assert_well_formed(comment, marker=True)
    rows, hidden = rows_and_hidden(comment)
    assert len(rows) == len(set(rows)) and set(rows) <= expected_rows
    assert len(rows) + hidden == len(expected_rows)
    assert hidden == 0  # a megabyte-long line is cut, not allowed to push the other rows out
    report = run.summary
    assert_well_formed(report, marker=False)
    assert rows_and_hidden(report) == (sorted(expected_rows), 0)
    assert f"{len(expected_rows) - 2} problems must be fixed" in comment
    assert comment.count("docker pull ") == 2

    # The log: only the bot's own annotations, on the first bad lines at their columns (GitHub shows 10 errors
    # of a step; one notice counts the rest), and every problem as a file:line:col log line; no token anywhere.
    commands = workflow_commands.assert_only_annotations(run.out)
    bad = [(line["line"], line["issues"][0]["col"]) for line in result["lines"] if line["status"] == "error"]
    errors = [(int(c.properties["line"]), int(c.properties["col"])) for c in commands if c.name == "error"]
    assert errors == bad[:10]
    (notice,) = [c for c in commands if c.name == "notice"]
    assert notice.data.startswith(f"{len(bad) - 10} more problems without an annotation")
    logged = re.findall(rf"^{re.escape(REQUIRED)}:(\d+):(\d+): error: ", run.out, re.M)
    assert sorted((int(line), int(col)) for line, col in logged) == sorted(bad)
    workflow_commands.assert_only_annotations(run.err)
    for text in (run.out, run.err, run.outputs, report, comment):
        assert TOKEN not in text

    figures.count("bad inputs tried", len(lines))
    figures.count("hostile lines contacted a registry", 0)
    figures.count("malformed comments", 0)


def test_a_fifty_megabyte_list_is_refused_without_downloading_it(validate_pr: Callable[[bytes], Run]) -> None:
    # Fifty lines of a megabyte each (a sane diff for the fake), after one ordinary line.
    huge = HEADER + b"nginx:1\n" + b"".join(b"# " + b"x" * (1000 * 1000) + b"\n" for _ in range(50))
    assert len(huge) > 50 * 1000 * 1000

    run = validate_pr(huge)

    assert run.code == 1
    assert run.spy.refused == []
    assert not run.fake.requests_to("GET", r"/repos/.*/git/blobs/.*")  # the content never left the fake
    (comment,) = run.comments
    assert_well_formed(comment, marker=True)
    message = f"{REQUIRED}: the file is {len(huge)} bytes; list files are limited to {MAX_LIST_BYTES} bytes"
    assert escape_markdown(message) in comment
    assert "1 problem must be fixed" in comment
    assert run.result["ok"] is False and run.result["lines"] == []
    (annotation,) = workflow_commands.assert_only_annotations(run.out)
    assert annotation.properties["file"] == REQUIRED and message in annotation.data
    figures.count("bad inputs tried")
    figures.count("malformed comments", 0)
