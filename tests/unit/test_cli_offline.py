"""The offline commands, run as a user runs them: a subprocess of ``python -m bot`` in a work tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ECR = "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn"


def run_bot(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    environ["PYTHONPATH"] = str(REPO)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "config.yml").write_text(f"target: {{registry: {ECR}}}\n")
    return tmp_path


def test_map_prints_targets_in_input_order_and_fails_on_bad_refs(workdir: Path) -> None:
    result = run_bot("map", "quay.io/calico/node:v3.7.4", "Bad:1", "nginx:1.17.9", "elastic.co/x:1", cwd=workdir)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{ECR}/quay/calico/node:v3.7.4", f"{ECR}/dockerhub/nginx:1.17.9"]
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert "'Bad:1' at column 1: uppercase letter 'B'" in errors[0]
    assert "registry elastic.co is not allowed" in errors[1]
    assert "Traceback" not in result.stderr


def test_map_registry_override(workdir: Path) -> None:
    result = run_bot("map", "--registry", "mirror.example.com/base", "nginx:1", cwd=workdir)
    assert result.returncode == 0
    assert result.stdout == "mirror.example.com/base/dockerhub/nginx:1\n"


def test_map_reverse_prints_the_source_of_mirror_paths(workdir: Path) -> None:
    result = run_bot(
        "map",
        "--reverse",
        f"{ECR}/quay/calico/node:v3.7.4",
        "gcr/google_containers/pause:3.9",
        "quay.io/calico/node:v1",
        cwd=workdir,
    )
    assert result.stdout.splitlines() == ["quay.io/calico/node:v3.7.4", "registry.k8s.io/pause:3.9"]
    assert result.stderr == f"error: quay.io/calico/node:v1: not in the mirror registry {ECR}\n"
    assert result.returncode == 1


def test_map_with_a_config_file(workdir: Path) -> None:
    config = workdir / "custom.yml"
    config.write_text("target: {registry: r.example.com}\nrules:\n  - {source: quay.io, target: q}\n")
    result = run_bot("map", "--config", str(config), "quay.io/a/b:1", "nginx:1", cwd=workdir)
    assert result.stdout == "r.example.com/q/a/b:1\n"
    assert "registry docker.io is not allowed" in result.stderr
    assert result.returncode == 1


def test_bad_config_is_one_readable_line(workdir: Path) -> None:
    (workdir / "mirror" / "config.yml").write_text("target: {registy: x}\n")
    result = run_bot("map", "nginx:1", cwd=workdir)
    assert result.returncode == 2
    assert (
        result.stderr
        == "error: mirror/config.yml: unknown key 'registy' in target; check the spelling against the README\n"
    )


def test_check_reports_every_problem_with_file_line_col(workdir: Path) -> None:
    mirror = workdir / "mirror"
    (mirror / "required-images.txt").write_text(
        "# header\n"
        "nginx:1.17.9\n"
        "docker.io/library/nginx:1.17.9\n"
        "docker.elastic.co/elasticsearch/elasticsearch:7.1.0\n"
        "quay.io/calico/node:v3.7.4#\n"
        "redis:7\n"
    )
    (mirror / "required-images-daily.txt").write_text("quay.io/calico/node\nnginx:1.25\n")
    (mirror / "mirrored-images.txt").write_text("redis:7@sha256:" + "c" * 64 + "\n")
    result = run_bot("check", cwd=workdir)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"nginx:1.17.9 -> {ECR}/dockerhub/nginx:1.17.9",
        f"redis:7 -> {ECR}/dockerhub/redis:7",
        f"quay.io/calico/node -> {ECR}/quay/calico/node:latest",
    ]
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "mirror/required-images-daily.txt:2:6: the daily list names repositories only; "
        "remove the tag or digest (every new tag is copied)",
        "mirror/required-images.txt:3:1: duplicate of mirror/required-images.txt:2 (the same image as 'nginx:1.17.9')",
    ]
    assert lines[2].startswith("mirror/required-images.txt:4:1: docker.elastic.co/elasticsearch/elasticsearch:7.1.0:")
    assert lines[3].startswith("mirror/required-images.txt:5:27: character '#' is not allowed in a tag")
    assert lines[4].startswith(
        "mirror/required-images.txt:6:1: warning: already mirrored (mirror/mirrored-images.txt:1"
    )
    assert lines[5] == "checked 3 files: 3 entries, 4 errors, 1 warning"


def test_check_annotates_in_github_actions(workdir: Path) -> None:
    (workdir / "mirror" / "required-images.txt").write_text("nginx:1\nBad,name:1\n")
    result = run_bot("check", cwd=workdir, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    assert (
        "::error file=mirror/required-images.txt,line=2,col=1::uppercase letter 'B' in the repository name"
        in result.stdout
    )


def test_check_annotates_what_github_shows_and_counts_the_rest(workdir: Path) -> None:
    # GitHub shows 10 error annotations of a step; thousands of them only slow the runner down.
    (workdir / "mirror" / "required-images.txt").write_text("".join(f"Bad{n}:1\n" for n in range(500)))
    result = run_bot("check", cwd=workdir, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    commands = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert [line.split(",")[1] for line in commands[:-1]] == [f"line={n}" for n in range(1, 11)]
    assert commands[-1].startswith("::notice::490 more problems without an annotation")
    assert len([line for line in result.stderr.splitlines() if ": uppercase letter 'B'" in line]) == 500


def test_check_plain_lines_show_the_text_as_written(workdir: Path) -> None:
    # Only workflow commands need '%' encoded; a log line for people shows the character itself.
    (workdir / "mirror" / "required-images.txt").write_text("nginx:1%\n")
    result = run_bot("check", cwd=workdir, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    assert "mirror/required-images.txt:1:8: character '%' is not allowed in a tag" in result.stderr
    assert "::error file=mirror/required-images.txt,line=1,col=8::character '%25' is not allowed" in result.stdout


def test_check_named_files_must_exist(workdir: Path) -> None:
    result = run_bot("check", "mirror/nope.txt", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr == "error: mirror/nope.txt: file not found\n"


def test_check_of_the_mirrored_list_itself_finds_no_self_duplicates(workdir: Path) -> None:
    # Naming the mirrored list as a FILE must not read it a second time as the --mirrored list.
    (workdir / "mirror" / "mirrored-images.txt").write_text("nginx:1@sha256:" + "a" * 64 + "\nquay.io/a/b:2\n")
    (workdir / "mirror" / "required-images.txt").write_text("quay.io/a/b:2\n")
    result = run_bot("check", "mirror/required-images.txt", "mirror/mirrored-images.txt", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "duplicate" not in result.stderr
    assert "mirror/required-images.txt:1:1: warning: already mirrored (mirror/mirrored-images.txt:2" in result.stderr
    assert "checked 2 files" in result.stderr


def test_check_passes_on_the_repository_lists() -> None:
    result = run_bot("check", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "0 errors" in result.stderr


def test_help_for_every_command(workdir: Path) -> None:
    top = run_bot("--help", cwd=workdir)
    assert top.returncode == 0
    for command in ("map", "check"):
        assert command in top.stdout
        result = run_bot(command, "--help", cwd=workdir)
        assert result.returncode == 0
        assert "--config" in result.stdout
