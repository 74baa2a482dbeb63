"""The package: built and installed as the action installs it, then run as a console command elsewhere.

The install is the action's own "Install the bot" script, run with bash into a throw-away venv that sees this
venv's packages through a ``.pth`` file (no download, a few seconds). The locks are checked against
``pyproject.toml``: every package pinned, every pin hashed, the runtime lock a part of the dev lock.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from bot import __version__
from tests.harness.package import action_step, install_package, run_installed

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, str]:
    """Package -> version of a hashed lock; asserts that every requirement is pinned and carries a hash."""
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", path.read_text()):
        if not block.strip() or block.startswith("#"):
            continue
        match = PIN.match(block)
        assert match, f"{path.name}: not pinned with ==: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{path.name}: {match[1]} has no hash"
        pins[normalise(match[1])] = match[2]
    return pins


def test_the_locks_pin_every_package_with_hashes_and_agree() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime, dev = locked(ROOT / "requirements.txt"), locked(ROOT / "requirements-dev.txt")
    for requirement in project["project"]["dependencies"]:
        name, version = requirement.split("==")
        assert runtime[normalise(name)] == version, f"requirements.txt does not lock {requirement}"
    # The lock holds the build backend too, so the action builds the bot without a download.
    assert "setuptools" in runtime
    assert len(runtime) > len(project["project"]["dependencies"]) + 5, "transitive dependencies are locked too"
    for name, version in runtime.items():
        assert dev.get(name) == version, f"requirements-dev.txt has {name}=={dev.get(name)}, not {version}"
    assert "--require-hashes" in action_step("Install the locked requirements")["run"]
    assert "--require-hashes -r requirements-dev.txt" in (ROOT / "scripts" / "test").read_text()


def run_key_script(tmp_path: Path, event: str) -> dict[str, str]:
    outputs = tmp_path / f"outputs-{event}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ACTION_PATH": str(ROOT),
        "PYTHON_VERSION": "3.11.9",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_OUTPUT": str(outputs),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
    }
    script = action_step("Compute the venv cache key")["run"]
    subprocess.run(["bash", "-c", script], env=env, check=True, timeout=30)
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def test_pull_request_jobs_cache_nothing_and_the_key_is_the_lock(tmp_path: Path) -> None:
    restore = action_step("Restore the venv")
    assert restore["if"] == "steps.venv.outputs.cache == 'true'"
    assert restore["with"]["key"] == "${{ steps.venv.outputs.key }}"
    assert "restore-keys" not in restore["with"], "a partial key match could restore another trust level's venv"
    for event in ("pull_request_target", "pull_request", "workflow_run", "issue_comment"):
        assert run_key_script(tmp_path, event)["cache"] == "false", event
    trusted = {event: run_key_script(tmp_path, event) for event in ("push", "schedule", "workflow_dispatch")}
    lock = subprocess.run(
        ["sha256sum", str(ROOT / "requirements.txt")], capture_output=True, text=True, check=True
    ).stdout[:32]
    for outputs in trusted.values():
        assert outputs["cache"] == "true"
        assert outputs["key"] == f"image-mirror-bot-venv-trusted-Linux-X64-3.11.9-{lock}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_package(tmp_path_factory.mktemp("package"))


def test_the_console_command_runs_from_any_directory(installed: Path, tmp_path: Path) -> None:
    proc = run_installed(installed, tmp_path, shlex.join(["image-mirror", "--version"]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"image-mirror {__version__}"
    proc = run_installed(
        installed, tmp_path, shlex.join(["image-mirror", "map", "--registry", "mirror.example", "quay.io/a/b:1"])
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mirror.example/quay/a/b:1"
    # The bot that ran is the installed copy, with its templates (package data), not this checkout.
    code = (
        "import bot, bot.report.comment as c; print(bot.__file__);"
        " print(sorted(p.name for p in c.TEMPLATE_DIR.glob('*.j2')))"
    )
    proc = run_installed(installed, tmp_path, shlex.join(["python", "-c", code]))
    assert proc.returncode == 0, proc.stderr
    where, templates = proc.stdout.splitlines()
    assert Path(where).is_relative_to(installed), where
    assert templates == str(sorted(p.name for p in (ROOT / "bot/report/templates").glob("*.j2")))
    proc = run_installed(installed, tmp_path, shlex.join(["python", "-m", "bot", "--version"]))
    assert proc.returncode == 0 and __version__ in proc.stdout, proc.stderr


def test_every_job_that_can_assume_the_aws_role_shows_the_environment_gate() -> None:
    # The gate itself is set up in the repository's settings (README: AWS credentials); the jobs carry the line.
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        text = path.read_text()
        for name, job in yaml.safe_load(text)["jobs"].items():
            if job.get("permissions", {}).get("id-token") != "write":
                continue
            block = text.split(f"\n  {name}:\n", 1)[1].split("\n  steps:", 1)[0]
            assert "# environment: image-mirror" in block, f"{path.name}:{name} has no environment gate line"
