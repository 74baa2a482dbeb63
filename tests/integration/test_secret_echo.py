"""A registry, or a proxy in between, that echoes the request's Authorization header in its reason phrase and
error body: no credential reaches the log, the annotations, the job summary or the ``result`` output, and in
GitHub Actions the derived forms (base64 of user:password, minted tokens) are masked before anything else."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Config
from bot.errors import RegistryError
from bot.github import actions
from bot.lists import MirroredIndex
from bot.redact import redact, remember_login
from bot.report.comment import render_comment, render_summary
from bot.rules import Mapper
from bot.settings import Settings
from bot.validate import ListChange, result_output, validate_changes
from tests.data.hostile.upstream import ECHOED_CREDENTIALS
from tests.harness import figures
from tests.harness.fake_upstream import RecordingUpstream
from tests.harness.images import push_image
from tests.harness.proxy import CountingProxy, Fault, ProxyRequest
from tests.harness.registry import RegistryServer

BASIC = "Basic " + base64.b64encode(b"user:pass").decode()


def _echo(request: ProxyRequest) -> Fault | None:
    """Refuse every manifest request, echoing its credentials the ways proxies and registries were seen to."""
    auth = request.headers.get("authorization")
    if auth is None or "/manifests/" not in request.path or request.method != "GET":
        return None  # the HEAD passes, so the manifest GET (whose error body is read) meets the echo
    body = json.dumps({"errors": [{"code": "DENIED", "message": f"denied for Authorization: {auth}"}]}).encode()
    headers = {"Content-Type": "application/json"}
    return Fault(status=403, reason=f"Forbidden ({auth})", headers=headers, body=body)


def _run(
    upstream: RegistryServer, target: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, list[str]]:
    """``sync`` in Actions through the echoing proxy; the whole output and the credentials the proxy saw."""
    monkeypatch.chdir(tmp_path)
    push_image(upstream, "team/app", "1.0")
    seen: list[str] = []

    def hook(request: ProxyRequest) -> Fault | None:
        if "authorization" in request.headers:
            seen.append(request.headers["authorization"])
        return _echo(request)

    files = {name: tmp_path / name for name in ("summary.md", "output.txt")}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary.md"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output.txt"]))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    with CountingProxy(upstream) as proxy:
        proxy.fault = hook
        stem = "MIRROR_AUTH_" + re.sub(r"[^A-Z0-9]", "_", proxy.host.upper())
        monkeypatch.setenv(stem + "_USERNAME", "user")
        monkeypatch.setenv(stem + "_PASSWORD", "pass")
        (tmp_path / "mirror").mkdir()
        config = {"target": {"registry": target.host}, "rules": [{"source": proxy.host, "target": "up"}]}
        (tmp_path / "mirror" / "config.yml").write_text(json.dumps(config), encoding="utf-8")
        (tmp_path / "mirror" / "required-images.txt").write_text(f"{proxy.host}/team/app:1.0\n", encoding="utf-8")
        assert main(["sync"]) == 1
    written = "".join(path.read_text(encoding="utf-8") for path in files.values() if path.exists())
    return written, seen


def test_basic_credentials_echoed_by_a_registry_are_never_shown(
    basic_registry: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written, seen = _run(basic_registry, registry, tmp_path, monkeypatch)
    out, err = capsys.readouterr()
    assert seen and set(seen) == {BASIC}  # the proxy did echo this
    encoded = BASIC.removeprefix("Basic ")
    assert f"::add-mask::{encoded}\n" in out
    shown = out.replace(f"::add-mask::{encoded}\n", "") + err + written
    assert encoded not in shown and encoded.rstrip("=") not in shown
    assert "Basic REDACTED" in shown and "denied for Authorization" in shown  # the rest of the reason stays
    figures.count("echoed credentials kept out of every output")


def test_minted_tokens_echoed_by_a_registry_are_never_shown(
    bearer_registry: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written, seen = _run(bearer_registry, registry, tmp_path, monkeypatch)
    out, err = capsys.readouterr()
    tokens = {header.removeprefix("Bearer ") for header in seen if header.startswith("Bearer ")}
    assert tokens
    for token in tokens:
        assert f"::add-mask::{token}\n" in out
        assert token not in out.replace(f"::add-mask::{token}\n", "") + err + written
        assert token.split(".")[1] not in err + written  # not even the JWT's claims part
    assert "Bearer REDACTED" in err
    figures.count("echoed credentials kept out of every output")


@pytest.mark.parametrize("text", ECHOED_CREDENTIALS)
def test_every_credential_shape_is_redacted(text: str) -> None:
    remember_login("robot", "s3cr3t-pw")
    shown = redact(text)
    for secret in ("s3cr3t-pw", "cm9ib3Q6czNjcjN0LXB3", "dG9rZW4tc2VjcmV0", "c2VjcmV0", "eyJhbGciOiJSUzI1NiJ9"):
        assert secret not in shown, shown
    assert "REDACTED" in shown or "://registry.example" in shown
    figures.count("echoed credentials kept out of every output")


def test_validate_pr_shows_no_echoed_credential_in_comment_summary_or_output(tmp_path: Path) -> None:
    """The validate-pr path: a registry error (here raised by the stand-in upstream, as the transport would
    with a body it did not clean) reaches the comment, the job summary and the ``result`` output cleaned."""
    remember_login("robot", "s3cr3t-pw")
    echoed = ECHOED_CREDENTIALS[2]
    upstream = RecordingUpstream(errors={"docker.io/library/nginx:1.0": RegistryError(f"GET ...: 403 {echoed}")})
    result = validate_changes(
        [ListChange("mirror/required-images.txt", b"", b"nginx:1.0\n")],
        mapper=Mapper(Config()),
        upstream=upstream,
        limits=Config().limits,
        mirrored=MirroredIndex(()),
    )
    assert any("Authorization" in issue.message for line in result.lines for issue in line.issues)
    output = tmp_path / "output.txt"
    actions.set_output("result", result_output(result), Settings.from_environ({"GITHUB_OUTPUT": str(output)}))
    line = actions.annotation("error", result.lines[0].issues[0].message, file="mirror/required-images.txt", line=1)
    for shown in (render_comment(result), render_summary(result).markdown, output.read_text(), line):
        assert "cm9ib3Q6czNjcjN0LXB3" not in shown and "REDACTED" in shown
    figures.count("echoed credentials kept out of every output")
