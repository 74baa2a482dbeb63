"""``preview``: the pull request comment's table for whole list files, offline, as the README's first command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bot.config import load_config
from bot.lists import ListKind, MirroredIndex, read_list
from bot.rules import Mapper

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"


def preview(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MIRROR_"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "bot", "preview", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_example_lists_show_every_mirror_path_and_what_a_merge_does() -> None:
    result = preview(
        "docs/examples/required-images.txt",
        "docs/examples/required-images-daily.txt",
        "--mirrored",
        "docs/examples/mirrored-images.txt",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "| Line | Source | Mirror path | Platforms | Size |" in out  # the comment's own table
    assert "Offline preview: no registry was asked" in out
    mapper = Mapper(load_config(REPO / "mirror" / "config.yml"))
    mirrored = MirroredIndex(read_list(EXAMPLES / "mirrored-images.txt", ListKind.MIRRORED).entries)
    required = read_list(EXAMPLES / "required-images.txt", ListKind.REQUIRED).entries
    daily = read_list(EXAMPLES / "required-images-daily.txt", ListKind.DAILY).entries
    assert len(required) >= 6 and daily
    new = 0
    for entry in required:
        status = "☑️ already mirrored" if mirrored.find(entry.ref) is not None else "✅ ok"
        new += status == "✅ ok"
        row = f"| `docs/examples/required-images.txt:{entry.line}` | `{entry.text}` | `{mapper.target(entry.ref)}` |"
        (line,) = [line for line in out.splitlines() if line.startswith(row)]
        assert line.endswith(f" | {status} |"), line
        assert set(line[len(row) : -len(f" | {status} |")].split("|")) <= {" - ", " -", ""}, line  # offline: no facts
    for entry in daily:
        target = mapper.target(entry.ref)
        assert f"| `{entry.text}` | `{target.registry}/{target.repository}` |" in out
    assert 0 < new < len(required)
    assert f"0 with errors. New images to copy: {new}." in out


def test_a_bad_line_fails_with_its_fix(tmp_path: Path) -> None:
    listing = tmp_path / "required-images.txt"
    listing.write_text("nginx:1.25.3\nelastic.co/x:1\n")
    result = preview(str(listing), "--registry", "m.example", cwd=tmp_path)
    assert result.returncode == 1
    assert re.search(r"\| `m\.example/dockerhub/nginx:1\.25\.3` \|( - \|)+ ✅ ok \|", result.stdout)
    assert "registry elastic.co is not allowed" in result.stdout and "**Fix:**" in result.stdout
    missing = preview(str(tmp_path / "nope.txt"), "--registry", "m.example", cwd=tmp_path)
    assert missing.returncode == 1 and "nope.txt: file not found" in missing.stderr


def test_a_path_the_target_cannot_hold_is_refused_as_the_pull_request_check_does(tmp_path: Path) -> None:
    listing = tmp_path / "required-images.txt"
    listing.write_text("docker.io/someorg/my__app:1.0\n")
    ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    result = preview(str(listing), "--registry", ecr, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ECR refuses the mirror repository dockerhub/someorg/my\\_\\_app" in result.stdout
    assert "ECR repository name pattern" in result.stdout and "**Fix:**" in result.stdout
