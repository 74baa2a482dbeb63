"""The bot installed as the action installs it, into a throw-away venv, without a download.

The install is the action's own "Install the bot" script, run with bash; the venv sees this venv's packages
(the locked dependencies and the build backend) through a ``.pth`` file, so it takes a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def action_step(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "action.yml").read_text())
    step = next(step for step in data["runs"]["steps"] if step.get("name") == name)
    assert isinstance(step, dict)
    return step


def install_package(base: Path) -> Path:
    """Install the bot under ``base``; returns the venv, whose ``bin/`` holds ``image-mirror``."""
    action = base / "action"
    action.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, action / name)
    shutil.copytree(ROOT / "bot", action / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    venv = action / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ACTION_PATH": str(action), "RUNNER_TEMP": str(base)}
    proc = subprocess.run(
        ["bash", "-c", action_step("Install the bot")["run"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (action / "build").exists(), "the build happens in a copy, not in the action's files"
    return venv


def run_installed(venv: Path, cwd: Path, command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` in bash with only the venv's ``bin/`` and the system's on PATH (no PYTHONPATH)."""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
