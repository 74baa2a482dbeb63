"""Which config a command reads (--config, MIRROR_CONFIG, ./mirror/config.yml, the repository root's), and the
commands that write mirror paths into workloads refusing the built-in target. Run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import DEFAULT_CONFIG_PATH, DEFAULT_TARGET_REGISTRY, find_config

REPO = Path(__file__).resolve().parents[2]


def run_bot(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MIRROR_"))}
    environ["PYTHONPATH"] = str(REPO)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )


def config(directory: Path, registry: str | None) -> Path:
    (directory / "mirror").mkdir(parents=True, exist_ok=True)
    path = directory / "mirror" / "config.yml"
    path.write_text(f"target: {{registry: {registry}}}\n" if registry else "limits: {max_new_lines: 5}\n")
    return path


def test_discovery_order(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    deep = repo / "docs" / "examples"
    deep.mkdir(parents=True)
    assert find_config(None, None, deep) is None
    root_config = config(repo, "root.example")
    assert find_config(None, None, deep) == root_config
    assert find_config(None, None, repo) == DEFAULT_CONFIG_PATH  # relative: messages stay short
    config(deep, "deep.example")
    assert find_config(None, None, deep) == DEFAULT_CONFIG_PATH
    assert find_config(None, "/etc/mirror.yml", deep) == Path("/etc/mirror.yml")
    assert find_config(Path("given.yml"), "/etc/mirror.yml", deep) == Path("given.yml")
    # Never above the repository root: a config of an enclosing directory belongs to someone else.
    config(tmp_path, "outside.example")
    assert find_config(None, None, repo / "docs") == root_config
    root_config.unlink()
    assert find_config(None, None, repo / "docs") is None


@pytest.mark.parametrize(
    "command",
    [
        ["map", "nginx:1.25.3"],
        ["rewrite", "deployment.yaml"],
        ["kustomize", "deployment.yaml"],
        ["webhook", "--cert", "c.pem", "--key", "k.pem", "--port", "0"],
    ],
    ids=["map", "rewrite", "kustomize", "webhook"],
)
def test_workload_commands_refuse_the_built_in_target(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "deployment.yaml").write_text("kind: Pod\nspec: {containers: [{name: a, image: nginx:1.25.3}]}\n")
    config(tmp_path, None)  # a config that leaves target.registry unset is no configured target either
    result = run_bot(*command, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {command[0]}: no target registry is configured (mirror/config.yml ")
    assert (
        DEFAULT_TARGET_REGISTRY in result.stderr and "--registry" in result.stderr and "MIRROR_CONFIG" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_map_from_a_subdirectory_uses_the_repository_config(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    config(tmp_path, "mirror.example")
    sub = tmp_path / "docs" / "examples"
    sub.mkdir(parents=True)
    assert run_bot("map", "nginx:1.25.3", cwd=sub).stdout == "mirror.example/dockerhub/nginx:1.25.3\n"
    elsewhere = config(tmp_path / "other", "other.example")
    result = run_bot("map", "nginx:1.25.3", cwd=sub, env={"MIRROR_CONFIG": str(elsewhere)})
    assert result.stdout == "other.example/dockerhub/nginx:1.25.3\n"
    result = run_bot("map", "--registry", "flag.example", "nginx:1.25.3", cwd=tmp_path / "other")
    assert result.stdout == "flag.example/dockerhub/nginx:1.25.3\n"
    result = run_bot("map", "nginx:1", cwd=sub, env={"MIRROR_CONFIG": str(tmp_path / "missing.yml")})
    assert result.returncode == 2
    assert "missing.yml: config file not found" in result.stderr
