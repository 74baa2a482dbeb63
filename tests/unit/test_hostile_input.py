"""Hostile and odd list files (tests/data/hostile/catalogue.py) through ``check`` and ``sync``, in GitHub Actions.

Every case gets its exact ``file:line:col`` problems or its mirror paths; nothing crashes; every line the bot
prints that the runner would read as a workflow command is one of the bot's own annotations, with the data
the bot meant; and ``sync`` refuses every bad line without opening a single connection.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config import DEFAULT_TARGET_REGISTRY, Config, Limits
from bot.errors import ListFileError
from bot.github import actions
from bot.lists import MAX_LIST_BYTES, ListKind, MirroredIndex, read_list
from bot.report.comment import render_comment
from bot.rules import Mapper
from bot.validate import Issue, LineResult, ListChange, ValidationResult, validate_changes
from tests.data.hostile import workflow_commands
from tests.data.hostile.catalogue import CATALOGUE, CATEGORIES, FIFTY_MB, Case
from tests.harness import figures
from tests.harness.fake_upstream import RecordingUpstream

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = "mirror/required-images.txt"
PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.*)$")


def problems_in(stderr: str, path: Path) -> list[tuple[int, int, str]]:
    found = []
    for text in stderr.splitlines():
        match = PROBLEM.match(text)
        if match and match["file"] == str(path):
            found.append((int(match["line"]), int(match["col"]), match["message"]))
    return found


def assert_matches(case: Case, found: list[tuple[int, int, str]]) -> None:
    assert [(line, col) for line, col, _ in found] == [(line, col) for line, col, _ in case.problems], found[:5]
    for (_, _, message), (_, _, words) in zip(found, case.problems, strict=True):
        assert words in message, (message, words)
        if "is not allowed" in words and "registry" in message:
            assert "mirror/config.yml" in message  # a refused registry always says where the fix goes


def targets_in(stdout: str) -> list[str]:
    prefix = f" -> {DEFAULT_TARGET_REGISTRY}/"
    return [line.split(prefix, 1)[1] for line in stdout.splitlines() if prefix in line]


@pytest.fixture
def in_actions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.chdir(tmp_path)  # no mirror/config.yml here: the built-in default rules
    return tmp_path


def test_the_catalogue_covers_every_kind_of_hostile_input() -> None:
    assert len(CATALOGUE) >= 60
    assert len({case.name for case in CATALOGUE}) == len(CATALOGUE)
    assert set(CATEGORIES) >= {
        "shell",
        "control",
        "workflow-command",
        "markdown",
        "homoglyph",
        "length",
        "case",
        "path",
        "address",
        "port",
        "url",
        "comment",
        "file",
    }


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.name)
def test_check_in_actions(case: Case, in_actions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = case.write(in_actions / "lists")

    code = main(["check", str(path)])

    out, err = capsys.readouterr()
    if case.file_error is not None:
        assert code == 1
        assert f"error: {path}: the file is " in err and case.file_error in err
        assert out == ""
    else:
        assert code == (1 if case.problems else 0), err
        found = problems_in(err, path)
        assert_matches(case, found)
        assert targets_in(out) == list(case.targets)
        # One annotation per problem, on the same line and column, with the message as its data (the log line
        # on stderr shows it through safe_line).
        annotations = workflow_commands.assert_only_annotations(out)
        assert [(c.properties["line"], c.properties["col"], actions.safe_line(c.data)) for c in annotations] == [
            (str(line), str(col), message) for line, col, message in found
        ]
        assert {c.properties["file"] for c in annotations} <= {str(path)}
    assert workflow_commands.assert_only_annotations(err) == []
    figures.count("bad inputs tried")


def test_check_subprocess_with_every_file_at_once(tmp_path: Path) -> None:
    cases = [case for case in CATALOGUE if case.file_error is None]
    paths = [case.write(tmp_path / "lists") for case in cases]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true"}

    proc = subprocess.run(
        [sys.executable, "-m", "bot", "check", *map(str, paths)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 1
    for case, path in zip(cases, paths, strict=True):
        assert_matches(case, problems_in(proc.stderr, path))
    commands = workflow_commands.assert_only_annotations(proc.stdout)
    # The first 10 errors are annotated (what GitHub shows); one notice counts the rest, all in the log.
    problems = sum(len(case.problems) for case in cases)
    assert [command.name for command in commands] == ["error"] * 10 + ["notice"]
    assert commands[-1].data.startswith(f"{problems - 10} more problems without an annotation")
    assert workflow_commands.assert_only_annotations(proc.stderr) == []
    assert len(targets_in(proc.stdout)) == sum(len(case.targets) for case in cases)
    figures.count("bad inputs tried", len(cases))


def test_a_fifty_megabyte_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    (case,) = [case for case in CATALOGUE if case.name == "fifty-megabytes"]
    path = case.write(tmp_path)
    assert path.stat().st_size == FIFTY_MB > MAX_LIST_BYTES

    tracemalloc.start()
    try:
        with pytest.raises(ListFileError) as refused:
            read_list(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 1024 * 1024, peak  # not even one MiB of the file was held
    assert refused.value.message == (
        f"{path}: the file is {FIFTY_MB} bytes; list files are limited to {MAX_LIST_BYTES} bytes (16 MiB): "
        "split it or remove lines"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "check", str(path)],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == f"error: {refused.value.message}\n"
    figures.count("bad inputs tried")


def test_a_list_without_an_end_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    # A FIFO reports size 0 and here never ends: the read stops one byte past the limit and is refused.
    fifo = tmp_path / "required-images.txt"
    os.mkfifo(fifo)
    written = [0]

    def write_forever() -> None:
        with contextlib.suppress(BrokenPipeError), fifo.open("wb") as handle:
            block = b"quay.io/calico/node:v3.27.0\n" * 2048
            while written[0] < 4 * MAX_LIST_BYTES:
                handle.write(block)
                written[0] += len(block)

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    with pytest.raises(ListFileError, match="list files are limited to"):
        read_list(fifo)
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert written[0] < 2 * MAX_LIST_BYTES


# --- workflow command escaping, unit by unit -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "::set-output name=result::pwned",
        "  ::add-mask::secret",
        "\t::stop-commands::pause",
        "\u00a0::error::x",
        "note ##[add-mask]secret",
        "##[set-output name=result;]pwned",
        "a\n::error::b",
        "a\r::warning::b",
        "nul\x00byte and escape \x1b[31m",
    ],
)
def test_safe_line_is_never_a_command(text: str) -> None:
    line = actions.safe_line(text)
    assert workflow_commands.parse(line) is None
    assert "\n" not in line and "\r" not in line and "\x00" not in line and "\x1b" not in line


@pytest.mark.parametrize(
    "message",
    ["::add-mask::x", "##[stop-commands]t", "a\nb\rc%0Ad", "100% sure, file=x::y", "\x00"],
)
def test_annotation_data_and_properties_survive_the_runner(message: str) -> None:
    line = actions.annotation("error", message, file="mirror/a,b::c.txt", line=3, col=7)
    command = workflow_commands.parse(line)
    assert command is not None and not command.legacy
    assert command.name == "error"
    assert command.data == message
    assert command.properties == {"file": "mirror/a,b::c.txt", "line": "3", "col": "7"}


# --- validation and the comment ------------------------------------------------------------------------------


def test_an_oversized_list_in_a_pull_request_is_one_problem_not_a_crash() -> None:
    config = Config(target_registry="mirror.example.com")
    head = b"nginx:1\n" + b"#" * MAX_LIST_BYTES
    result = validate_changes(
        [ListChange(REQUIRED, b"", head)],
        mapper=Mapper(config),
        upstream=RecordingUpstream(),
        limits=config.limits,
        mirrored=MirroredIndex(()),
    )
    assert not result.ok and result.lines == ()
    (issue,) = result.issues
    assert issue.message == (
        f"{REQUIRED}: the file is {len(head)} bytes; list files are limited to {MAX_LIST_BYTES} bytes (16 MiB): "
        "split it or remove lines"
    )
    body = render_comment(result)
    assert "No image lines were added" not in body and "1 problem must be fixed" in body
    figures.count("bad inputs tried")


def test_every_problem_of_a_line_is_shown() -> None:
    issues = (Issue("first <b>", "fix one"), Issue("second @team", "fix two", severity="warning"))
    line = LineResult(REQUIRED, 2, 1, "x y", ListKind.REQUIRED, issues=issues)
    body = render_comment(ValidationResult((line,), (), Limits(), (REQUIRED,)))
    assert body.count("**Fix:**") == 2
    assert "first &lt;b&gt;" in body and "second @&#8203;team" in body


# --- sync ------------------------------------------------------------------------------------------------------


class NoNetwork:
    """Refuses and records every name lookup and connection attempt in this process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[Any] = []
        real_connect = socket.socket.connect

        def connect(sock: socket.socket, address: Any) -> None:
            self.attempts.append(address)
            if sock.family == socket.AF_UNIX:
                real_connect(sock, address)
                return
            raise ConnectionRefusedError(f"test: no connection allowed to {address}")

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            self.attempts.append(host)
            raise socket.gaierror(f"test: no lookup allowed of {host}")

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NoNetwork]:
    yield NoNetwork(monkeypatch)


def test_sync_refuses_every_bad_line_before_any_network(
    in_actions: Path, no_network: NoNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only a loopback test registry is allowed, so every catalogue line is bad: by syntax or by registry.
    (in_actions / "config.yml").write_text(
        "target: {registry: 127.0.0.1:9}\nrules:\n  - {source: '127.0.0.1:9', target: up}\n"
    )
    lines = [case.pr_line for case in CATALOGUE if case.pr_line is not None]
    listing = in_actions / "required-images.txt"
    listing.write_bytes(b"".join(line + b"\n" for line in lines))
    mirrored = in_actions / "mirrored-images.txt"

    code = main(["sync", "--config", "config.yml", "--list", str(listing), "--mirrored", str(mirrored)])

    out, err = capsys.readouterr()
    assert no_network.attempts == []
    assert code == 1
    assert not mirrored.exists() or mirrored.read_text() == ""
    reported = {int(m["line"]) for m in map(PROBLEM.match, re.sub(r"^error: ", "", err, flags=re.M).splitlines()) if m}
    failed = re.findall(r"^FAILED\s+(\S+) -> -: .*not allowed", out, re.MULTILINE)
    comment_only = [case for case in CATALOGUE if case.pr_line is not None and not case.problems and not case.targets]
    assert len(reported) + len(failed) == len(lines) - len(comment_only)
    workflow_commands.assert_only_annotations(out)
    workflow_commands.assert_only_annotations(err)
    figures.count("bad inputs tried", len(lines))
    figures.count("hostile lines contacted a registry", 0)
