"""A 20 000-line pull request through ``validate-pr`` in this process: every channel GitHub caps stays under its cap.

GitHub refuses a job summary over 1 MiB, allows 1 MB of step outputs per job (counted as UTF-16), shows only the
first 10 error and 10 warning annotations of a step, and refuses comments over 65536 characters. The log has no
such cap, so it must hold every problem, each on one line of sane length. No registry is needed: the lines are
syntax errors, registries no rule allows, and images the mirrored list already holds (all checked offline).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.cli import main
from bot.report.summary import MAX_SUMMARY_BYTES
from tests.data.hostile import workflow_commands
from tests.data.hostile.comment_checks import assert_well_formed, rows_and_hidden
from tests.harness.github_fake import GitHubFake

REPO = "octo/mirror"
REQUIRED = "mirror/required-images.txt"
TOKEN = "ghs_bigFAKEtoken0123456789abcdef"
HEADER = b"# Images to mirror, one per line.\n"
LINES = 20_000
MIRRORED = 50  # lines that only warn (already mirrored)
HUGE = 1_000_000  # characters of one line
MiB = 1024 * 1024
PROBLEM = re.compile(rf"^{re.escape(REQUIRED)}:(\d+):(\d+): (error|warning): ", re.M)
ROW_LOG = re.compile(rf"^{re.escape(REQUIRED)}:(\d+): .* -> \S+: (\w+)$", re.M)


@dataclass
class Run:
    code: int
    out: str
    err: str
    summary: str
    outputs: str
    comment: str

    @property
    def result(self) -> dict[str, Any]:
        (found,) = re.findall(r"^result<<(\S+)\n(.*?)\n\1$", self.outputs, re.M | re.S)
        data: dict[str, Any] = json.loads(found[1])
        return data


def pull_request() -> tuple[bytes, dict[int, tuple[int, str]]]:
    """The list file and, per line number, the (column, severity) of its one expected problem."""
    lines: list[bytes] = []
    expected: dict[int, tuple[int, str]] = {}
    for index in range(LINES):
        number = index + 2  # after the header
        if index == 1:
            lines.append(b"evil.example/" + b"a" * HUGE + b":1")
            expected[number] = (256, "error")  # the name is too long from its 256th character on
        elif index < MIRRORED * 2 and index % 2 == 0:
            lines.append(b"app%d:1" % index)  # docker.io/library/appN:1, in the mirrored list
            expected[number] = (1, "warning")
        elif index % 3 == 0:
            lines.append(b"Bad Reference %d" % index)  # a syntax error: whitespace inside a reference
            expected[number] = (4, "error")
        elif index % 3 == 1:
            lines.append(b"  evil.example/y%d:1" % index)  # indented: the column is the reference's
            expected[number] = (3, "error")
        else:
            lines.append(b"evil.example/x%d:1" % index)  # no rule allows this registry
            expected[number] = (1, "error")
    return HEADER + b"".join(line + b"\n" for line in lines), expected


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One run for every test of this module (it is the expensive part)."""
    tmp_path = tmp_path_factory.mktemp("big")
    checkout = tmp_path / "checkout"
    (checkout / "mirror").mkdir(parents=True)
    (checkout / "mirror" / "config.yml").write_text(
        "target: {registry: mirror.example.com}\nrules:\n  - {source: docker.io, target: dh}\n"
    )
    mirrored = "".join(f"docker.io/library/app{index}:1@sha256:{'e' * 64}\n" for index in range(0, MIRRORED * 2, 2))
    (checkout / "mirror" / "mirrored-images.txt").write_text(mirrored)
    content, _ = pull_request()
    event, outputs, summary = tmp_path / "event.json", tmp_path / "outputs.txt", tmp_path / "summary.md"
    outputs.write_text("")
    summary.write_text("")
    out, err = io.StringIO(), io.StringIO()
    with GitHubFake(token=TOKEN) as fake, pytest.MonkeyPatch.context() as patch:
        fake.add_repo(REPO, files={REQUIRED: HEADER, "mirror/mirrored-images.txt": b""})
        fake.commit(REPO, "big", {REQUIRED: content})
        number = fake.open_pull(REPO, head="big", user="mallory")
        event.write_text(json.dumps({"number": number, "pull_request": {"number": number}}))
        patch.chdir(checkout)
        for name, value in {
            "HOME": str(tmp_path),
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": fake.base_url,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_STEP_SUMMARY": str(summary),
        }.items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate-pr"])
        (comment,) = fake.comments(REPO, number)
    summary_text, outputs_text = summary.read_text(encoding="utf-8"), outputs.read_text(encoding="utf-8")
    yield Run(code, out.getvalue(), err.getvalue(), summary_text, outputs_text, comment)


def test_the_log_holds_every_problem_on_short_lines(big_run: Run) -> None:
    _, expected = pull_request()
    assert big_run.code == 1
    logged = {int(line): (int(col), severity) for line, col, severity in PROBLEM.findall(big_run.out)}
    assert len(PROBLEM.findall(big_run.out)) == len(expected)  # one line per problem, none twice
    assert logged == expected
    rows = {int(line): status for line, status in ROW_LOG.findall(big_run.out)}
    assert rows == {line: "mirrored" if severity == "warning" else "error" for line, (_, severity) in expected.items()}
    # The megabyte-long line is cut in the log, saying how long it was.
    assert max(len(line) for line in big_run.out.splitlines()) < 4096
    assert f"({HUGE + len('evil.example/:1')} characters)" in big_run.out
    assert "validate-pr: 20000 added lines checked" in big_run.err
    assert TOKEN not in big_run.out + big_run.err + big_run.summary + big_run.outputs + big_run.comment


def test_annotations_stop_at_what_github_shows_and_one_notice_counts_the_rest(big_run: Run) -> None:
    _, expected = pull_request()
    commands = workflow_commands.assert_only_annotations(big_run.out)
    levels = Counter(command.name for command in commands)
    # The first 10 of each level, in file order, at their exact line and column.
    issue = commands[0]  # the pull request as a whole: over limits.max_new_lines
    assert issue.name == "error" and "limits.max_new_lines" in issue.data and "line" not in issue.properties
    on_lines = [(int(c.properties["line"]), int(c.properties["col"]), c.name) for c in commands[1:-1]]
    errors = [(line, col, "error") for line, (col, severity) in sorted(expected.items()) if severity == "error"]
    warnings = [(line, col, "warning") for line, (col, severity) in sorted(expected.items()) if severity == "warning"]
    assert sorted(on_lines) == sorted(errors[:9] + warnings[:10])
    assert levels == {"error": 10, "warning": 10, "notice": 1}
    notice = commands[-1]
    assert notice.name == "notice"
    assert notice.data.startswith(f"{len(expected) + 1 - 20} more problems without an annotation")
    assert "the log of this step lists every problem" in notice.data


def test_the_job_summary_stays_under_githubs_limit_and_says_where_the_rest_is(big_run: Run) -> None:
    size = len(big_run.summary.encode("utf-8"))
    assert size <= MAX_SUMMARY_BYTES < MiB
    assert_well_formed(big_run.summary, marker=False)
    rows, hidden = rows_and_hidden(big_run.summary)
    assert rows == list(range(2, 2 + len(rows))) and len(rows) >= 100
    assert hidden == LINES - len(rows)
    assert f"the log of this check lists all {LINES} lines and every problem" in big_run.summary
    assert f"**Totals:** {LINES} added lines" in big_run.summary
    # Problems of the rows shown, every one of them; the huge line's text is cut.
    assert big_run.summary.count("**Fix:**") == len(rows) + 1
    assert f"… \\({HUGE + len('evil.example/:1')} characters\\)" in big_run.summary  # escaped markdown


def test_the_comment_says_which_channel_holds_the_rows_it_leaves_out(big_run: Run) -> None:
    summary_rows, _ = rows_and_hidden(big_run.summary)
    assert len(big_run.comment) < 65536
    assert_well_formed(big_run.comment, marker=True)
    rows, hidden = rows_and_hidden(big_run.comment)
    assert 0 < len(rows) < len(summary_rows) and hidden == LINES - len(rows)
    assert (
        f"… and {hidden} more lines (with their problems and pull lines) not shown here. The job summary of this "
        f"check shows the first {len(summary_rows)} lines; the log of this check lists all {LINES} lines and "
        "every problem."
    ) in big_run.comment


def test_the_result_output_is_bounded_and_says_it_was_cut(big_run: Run) -> None:
    _, expected = pull_request()
    assert len(big_run.outputs.encode("utf-16-le")) < MiB // 2  # GitHub: 1 MB of outputs per job, as UTF-16
    result = big_run.result
    assert result["ok"] is False
    assert result["total_lines"] == LINES and result["truncated"] is True
    assert result["errors"] == LINES - MIRRORED + 1  # one more: over limits.max_new_lines
    assert result["counts"] == {"ok": 0, "mirrored": MIRRORED, "warning": 0, "error": LINES - MIRRORED}
    (issue,) = result["issues"]
    assert issue["limit"] == "limits.max_new_lines"
    lines = result["lines"]
    assert 0 < len(lines) < LINES
    assert [line["line"] for line in lines] == list(range(2, 2 + len(lines)))
    for line in lines:
        col, severity = expected[line["line"]]
        assert [(i["col"], i["severity"]) for i in line["issues"]] == [(col, severity)]
    assert len(lines[1]["text"]) < 2048 and lines[1]["text"].endswith(f"({HUGE + len('evil.example/:1')} characters)")
