"""webhook/: the Dockerfile, the deploy files and the package agree (no image is built here: no daemon)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from bot import __version__
from bot.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = ROOT / "webhook"


def dockerfile() -> dict[str, list[str]]:
    """Instruction -> its arguments, one entry per occurrence (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (WEBHOOK / "Dockerfile").read_text())
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.setdefault(word.upper(), []).append(rest.strip())
    return instructions


def deployment() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((WEBHOOK / "deployment.yaml").read_text()))
    found = next(doc for doc in docs if doc["kind"] == "Deployment")
    assert isinstance(found, dict)
    return found


def test_the_dockerfile_installs_the_package_from_its_lock_and_runs_its_console_command() -> None:
    steps = dockerfile()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entrypoint = json.loads(steps["ENTRYPOINT"][0])
    assert entrypoint == ["image-mirror"]
    assert project["project"]["scripts"]["image-mirror"] == "bot.cli:main"
    runs = steps["RUN"]
    assert any("--require-hashes -r requirements.txt" in run for run in runs)
    assert any("--no-deps --no-index --no-build-isolation ." in run for run in runs)
    copied = [shlex.split(args)[:-1] for args in steps["COPY"]]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository (build from its root)"
    assert {"requirements.txt", "pyproject.toml", "README.md", "bot/"} <= {s for c in copied for s in c}
    base = re.fullmatch(r"python:(\d+)\.(\d+)-\S+", steps["FROM"][0])
    assert base is not None
    assert project["project"]["requires-python"] == ">=3.11" and (int(base[1]), int(base[2])) >= (3, 11)


def test_the_deployment_runs_what_the_image_holds() -> None:
    steps = dockerfile()
    pod = deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    cmd = json.loads(steps["CMD"][0])
    assert container["args"] == cmd, "the Deployment and the image's default command must agree"
    args = build_parser(cmd).parse_args(cmd)  # the package accepts every flag
    assert args.command == "webhook"
    assert [port["containerPort"] for port in container["ports"]] == [args.port] == [int(steps["EXPOSE"][0])]
    user, group = (int(part) for part in steps["USER"][0].split(":"))
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (user, group)
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    for path in (args.cert, args.key, args.mirrored, args.config):
        assert str(path.parent) in mounts, f"{path} is not on a mounted volume"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "PYTHONDONTWRITEBYTECODE=1" in steps["ENV"][0]  # nothing is written to the read-only root


def test_the_deploy_files_take_the_users_image_never_a_docker_hub_default() -> None:
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    host = image.split("/", 1)[0]
    assert "." in host and host.endswith(".invalid"), f"{image}: a bare name would be pulled from Docker Hub"
    name, tag = image.rsplit(":", 1)
    assert tag == __version__
    kustomization = yaml.safe_load((WEBHOOK / "kustomization.yaml").read_text())
    (entry,) = kustomization["images"]
    assert entry["name"] == name, "kustomize replaces the Deployment's image by this name"
    assert entry["newTag"] == __version__
    assert "deployment.yaml" in kustomization["resources"]
    assert "webhook/kustomization.yaml" in (ROOT / "docs" / "webhook.md").read_text()
