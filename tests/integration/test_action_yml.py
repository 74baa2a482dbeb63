"""action.yml and the workflows: inputs reach the bot only through env, pinned actions, least privilege, zizmor.

The action's run script is also executed for real (with bash), with hostile inputs, to show that inputs are
used as data: nothing is expanded, evaluated or globbed, and a ``bot/`` directory in the checkout cannot
replace the action's own code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
OWN_WORKFLOWS = ("validate.yml", "sync.yml", "daily.yml", "ci.yml")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def action() -> dict[Any, Any]:
    return load(ROOT / "action.yml")


def workflow(name: str) -> dict[Any, Any]:
    return load(WORKFLOWS / name)


def triggers(data: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML reads the key 'on' as True.
    value = data.get("on", data.get(True))
    assert isinstance(value, dict)
    return value


def all_steps() -> list[tuple[str, dict[str, Any]]]:
    steps = [("action.yml", step) for step in action()["runs"]["steps"]]
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_name, job in load(path)["jobs"].items():
            steps += [(f"{path.name}:{job_name}", step) for step in job.get("steps", [])]
    return steps


def test_no_expression_inside_any_run_script() -> None:
    for where, step in all_steps():
        if "run" in step:
            assert "${{" not in step["run"], f"{where}: {step.get('name')} expands an expression inside run:"


def test_every_input_reaches_the_bot_through_env() -> None:
    data = action()
    run_step = next(step for step in data["runs"]["steps"] if step.get("id") == "run")
    env_values = " ".join(str(value) for value in run_step["env"].values())
    for name in data["inputs"]:
        if name in ("python-version", "working-directory"):
            continue  # used by the steps themselves, not by the bot
        assert f"inputs.{name} }}}}" in env_values, f"input {name} is not passed through env"
    assert run_step["env"]["GITHUB_TOKEN"] == "${{ inputs.github-token }}"
    assert data["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert {"result", "comment-url"} <= set(data["outputs"])


def test_third_party_actions_are_pinned_by_commit() -> None:
    for where, step in all_steps():
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{where}: {uses} is not pinned to a commit SHA"


def test_own_workflows_use_the_local_action_and_grant_permissions_per_job() -> None:
    for name in OWN_WORKFLOWS:
        data = workflow(name)
        assert data["permissions"] == {}, name
        for job_name, job in data["jobs"].items():
            assert "permissions" in job, f"{name}:{job_name} needs its own permissions"
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
        uses = [step.get("uses") for job in data["jobs"].values() for step in job.get("steps", [])]
        if name != "ci.yml":
            assert "./" in uses, f"{name} must use the local action"


def test_validate_workflow_never_checks_out_the_pull_request() -> None:
    data = workflow("validate.yml")
    on = triggers(data)
    assert set(on) == {"pull_request_target"}
    assert set(on["pull_request_target"]["paths"]) == {
        "mirror/required-images.txt",
        "mirror/required-images-daily.txt",
    }
    (job,) = data["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    checkout = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/checkout@"))
    assert "ref" not in checkout.get("with", {}), "pull_request_target must check out the base branch only"
    assert not any("run" in step for step in job["steps"])
    assert any(step.get("with", {}).get("command") == "validate-pr" for step in job["steps"])


def test_sync_runs_one_at_a_time_and_daily_on_a_schedule() -> None:
    sync = workflow("sync.yml")
    on = triggers(sync)
    assert on["push"]["paths"] == ["mirror/required-images.txt"]
    assert "workflow_dispatch" in on
    assert sync["concurrency"]["cancel-in-progress"] is False
    assert "default_branch" in sync["jobs"]["sync"]["if"]
    daily = triggers(workflow("daily.yml"))
    assert "schedule" in daily and "workflow_dispatch" in daily
    ci = workflow("ci.yml")
    assert any("./scripts/test" in step.get("run", "") for step in ci["jobs"]["test"]["steps"])


def test_every_aws_login_takes_the_oidc_audience_of_the_china_partition() -> None:
    # The README tells China users to set AWS_OIDC_AUDIENCE=sts.amazonaws.com.cn; every workflow must pass it.
    logins = [(where, step) for where, step in all_steps() if "configure-aws-credentials@" in str(step.get("uses"))]
    assert logins
    for where, step in logins:
        assert "vars.AWS_OIDC_AUDIENCE" in str(step["with"].get("audience", "")), f"{where}: no audience"


def test_suppressions_say_why() -> None:
    for path in [ROOT / "action.yml", *WORKFLOWS.glob("*.yml")]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "zizmor: ignore" in line:
                reason = line.split("zizmor: ignore", 1)[1].split("]", 1)[-1]
                assert len(reason.strip(" -#")) > 20, f"{path.name}:{number}: a suppression needs a reason"


@pytest.mark.skipif(shutil.which("zizmor") is None and not (ROOT / ".venv/bin/zizmor").exists(), reason="no zizmor")
def test_zizmor_reports_nothing_medium_or_high() -> None:
    zizmor = str(ROOT / ".venv/bin/zizmor") if (ROOT / ".venv/bin/zizmor").exists() else "zizmor"
    proc = subprocess.run(
        [zizmor, "--offline", "--min-severity", "medium", "--format", "json", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- the run script, executed ----------------------------------------------------------------------------


def run_script() -> str:
    step = next(step for step in action()["runs"]["steps"] if step.get("id") == "run")
    script = step["run"]
    assert isinstance(script, str)
    return script


def execute(tmp_path: Path, python: Path | None = None, **inputs: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the action's run script with bash; ``python`` replaces the venv's interpreter (default: this venv)."""
    action_path = tmp_path / "action"
    action_path.mkdir(exist_ok=True)
    venv = action_path / ".venv"
    if python is None and not venv.exists():
        venv.symlink_to(Path(sys.prefix))
    elif python is not None and not venv.exists():
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(python)
    if not (action_path / "bot").exists():
        (action_path / "bot").symlink_to(ROOT / "bot")
    outputs = tmp_path / "outputs.txt"
    outputs.touch()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ACTION_PATH": str(action_path),
        "PYTHONPATH": str(action_path),
        "GITHUB_OUTPUT": str(outputs),
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
        "GITHUB_TOKEN": "ghs_fake",
    }
    for key in ("command", "config", "target-registry", "aws-region", "dry-run", "commit", "shard", "results", "args"):
        env[f"INPUT_{key.upper().replace('-', '_')}"] = inputs.get(key.replace("-", "_"), "")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    proc = subprocess.run(
        ["bash", "-c", run_script()], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return proc, outputs


def argv_printer(tmp_path: Path) -> Path:
    """A stand-in interpreter that prints its arguments as JSON (to see exactly what the bot would get)."""
    printer = tmp_path / "print-argv"
    printer.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    printer.chmod(0o755)
    return printer


def test_inputs_become_arguments_verbatim(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "shard-1-of-2.json").write_text("{}")
    hostile = "$(touch pwned) `touch pwned2` * ;touch pwned3"
    proc, outputs = execute(
        tmp_path,
        argv_printer(tmp_path),
        command="daily",
        config="mirror/config.yml",
        target_registry="registry.example/mirror",
        dry_run="true",
        commit="true",
        shard="2/4",
        args=hostile,
    )
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(proc.stdout)
    results_file = str(tmp_path / "runner-temp" / "image-mirror-results" / "shard-2-of-4.json")
    assert argv == [
        "-P",
        "-m",
        "bot",
        "daily",
        "--config",
        "mirror/config.yml",
        "--registry",
        "registry.example/mirror",
        "--dry-run",
        "--commit",
        "--shard",
        "2/4",
        "--results",
        results_file,
        "$(touch",
        "pwned)",
        "`touch",
        "pwned2`",
        "*",
        ";touch",
        "pwned3",
    ]
    assert not list((tmp_path / "work").glob("pwned*"))
    assert f"results-file={results_file}\n" == outputs.read_text()

    proc, _ = execute(tmp_path, command="merge-results", results=str(results))
    assert json.loads(proc.stdout)[3:] == ["merge-results", str(results / "shard-1-of-2.json")]


def test_args_on_several_lines_all_arrive(tmp_path: Path) -> None:
    # A YAML block (args: |) holds one argument per line; none may be dropped.
    proc, _ = execute(tmp_path, argv_printer(tmp_path), command="map", args="nginx:1\n  quay.io/x/y:2\t*\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[3:] == ["map", "nginx:1", "quay.io/x/y:2", "*"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "sync; touch pwned"}, "the command input must be one of"),
        ({"command": "daily", "shard": "1/2\nresult=pwned"}, "the shard input must look like"),
    ],
)
def test_bad_inputs_are_refused(tmp_path: Path, inputs: dict[str, str], message: str) -> None:
    proc, outputs = execute(tmp_path, argv_printer(tmp_path), **inputs)
    assert proc.returncode == 2
    assert message in proc.stdout
    assert "pwned" not in proc.stdout and outputs.read_text() == ""
    assert not list((tmp_path / "work").glob("pwned*"))


def test_the_actions_own_bot_runs_not_one_in_the_checkout(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "bot").mkdir(parents=True)
    (work / "bot" / "__init__.py").write_text("")
    (work / "bot" / "__main__.py").write_text("open('pwned', 'w').close()\n")
    (work / "mirror").mkdir()
    (work / "mirror" / "required-images.txt").write_text("nginx:1.25.3\n")
    assert sys.prefix != sys.base_prefix, "runs in the project's venv"
    proc, _ = execute(tmp_path, command="check")
    assert proc.returncode == 0, proc.stderr
    assert "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn/dockerhub/nginx:1.25.3" in proc.stdout
    assert not (work / "pwned").exists()


# Sub-commands the action does not run, and why.
NOT_IN_ACTION = {
    "webhook": "a long-running HTTPS server deployed in the cluster, not a workflow step",
    "preview": "an offline look at the lists for a person at a terminal; validate-pr does it for pull requests",
}


def test_the_command_input_offers_every_sub_command() -> None:
    from bot.cli import build_parser

    parser = build_parser([])
    choices = next(a.choices for a in parser._actions if isinstance(a.choices, dict))
    assert set(NOT_IN_ACTION) <= set(choices)
    offered = set(choices) - set(NOT_IN_ACTION)
    script = next(step["run"] for step in action()["runs"]["steps"] if "INPUT_COMMAND" in step.get("run", ""))
    case = re.search(r'case "\$INPUT_COMMAND" in\s+([\w|-]+)\)', script)
    assert case is not None
    assert set(case.group(1).split("|")) == offered
    refusal = re.search(r"the command input must be one of ([\w, -]+)", script)
    assert refusal is not None
    assert set(refusal.group(1).split(", ")) == offered
    description = action()["inputs"]["command"]["description"]
    assert {name for name in choices if re.search(rf"(?<![\w-]){name}(?![\w-])", description)} == offered
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `command` |"))
    assert set(re.findall(r"`([\w-]+)`", row.split("|")[3])) == offered
