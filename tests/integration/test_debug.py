"""``--debug``: a traceback and a redacted request log on stderr; one sentence and no traceback without it."""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import debug
from bot.cli import main
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer

REPO = Path(__file__).resolve().parents[2]
BASIC = base64.b64encode(b"user:pass").decode()


def run_bot(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MIRROR_", "RUNNER_"))}
    environ["PYTHONPATH"] = str(REPO)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Basic " + BASIC, "Authorization: Basic REDACTED"),
        (
            "{'Authorization': 'Bearer eyJhbGciOi.x.y', 'Accept': '*/*'}",
            "{'Authorization': 'Bearer REDACTED', 'Accept'",
        ),
        ('unauthorized: header was "Basic ' + BASIC + '"', 'unauthorized: header was "Basic REDACTED"'),
        ('{"token": "eyJabc.def", "expires_in": 300}', '{"token": "REDACTED", "expires_in": 300}'),
        (
            '"GET /blobs/x?X-Amz-Signature=abc123&digest=sha256:1 HTTP/1.1" 200',
            '"GET /blobs/x?X-Amz-Signature=REDACTED&digest=sha256:1 HTTP/1.1" 200',
        ),
        ("https://bob:hunter2@registry.example/v2/", "https://registry.example/v2/"),
        ("GET https://quay.io/v2/ -> 200", "GET https://quay.io/v2/ -> 200"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert shown in debug.redact(text)


def test_debug_logs_each_request_without_credentials(
    source: RegistryServer,
    basic_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    stem = "MIRROR_AUTH_" + basic_registry.host.replace(".", "_").replace(":", "_")
    monkeypatch.setenv(stem + "_USERNAME", "user")
    monkeypatch.setenv(stem + "_PASSWORD", "pass")
    push_image(source, "library/web", "1.0")
    src, dst = f"{source.host}/library/web:1.0", f"{basic_registry.host}/copies/web:1.0"
    assert main(["copy", src, dst, "--debug"]) == 0
    err = capsys.readouterr().err
    log = [line for line in err.splitlines() if line.startswith("debug: bot.registry.transport: ")]
    assert f"debug: bot.registry.transport: GET http://{basic_registry.host}/v2/ -> 401 (auth: none)" in log
    assert any(f"PUT http://{basic_registry.host}/v2/copies/web/manifests/1.0 -> 201 (auth: Basic)" in x for x in log)
    assert any(line.startswith("debug: urllib3.connectionpool: ") for line in err.splitlines())
    assert BASIC not in err and "pass" not in err.replace("passed", "")
    # Off again after the run, and off by default.
    assert main(["copy", src, dst]) == 0
    assert "debug:" not in capsys.readouterr().err


def test_a_failure_is_one_sentence_unless_debug_asks_for_the_traceback(tmp_path: Path) -> None:
    plain = run_bot("map", "--config", "missing.yml", "nginx:1", cwd=tmp_path)
    assert plain.returncode == 2
    assert (
        plain.stderr
        == "error: missing.yml: config file not found; pass an existing file to --config (or in MIRROR_CONFIG)\n"
    )
    for args, env in ((["--debug", "map"], {}), (["map", "--debug"], {}), (["map"], {"MIRROR_DEBUG": "1"})):
        loud = run_bot(*args, "--config", "missing.yml", "nginx:1", cwd=tmp_path, env=env)
        assert loud.returncode == 2
        assert loud.stderr.startswith("Traceback (most recent call last):"), args
        assert "bot.errors.ConfigError" in loud.stderr
        assert loud.stderr.endswith(plain.stderr)


def test_a_bug_is_one_redacted_sentence(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("boom with token=s3cr3t")

    import bot.commands.map as command

    monkeypatch.setattr(command, "run", broken)
    monkeypatch.delenv("MIRROR_DEBUG", raising=False)
    monkeypatch.delenv("RUNNER_DEBUG", raising=False)
    assert main(["map", "--registry", "m.example", "nginx:1"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "error: internal error (RuntimeError: boom with token=REDACTED); run again with --debug for the traceback\n"
    )
    assert main(["map", "--registry", "m.example", "nginx:1", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "s3cr3t" not in err
