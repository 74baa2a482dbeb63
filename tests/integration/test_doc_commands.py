"""Every shell command of the README and the guides in docs/ runs as written, from where the text says.

Each fenced shell block is listed in BLOCKS (a new block fails the test until it is listed), with how it is
run here or why it is not. The bot is the installed package (the action's install script), called as
``image-mirror`` from the directory the text names, with nothing of this checkout on ``PYTHONPATH``.

Not run, and why (the same reasons are in BLOCKS):
- ``./scripts/test``: the suite itself.
- ``pip install .``, ``pipx install .``, ``pip install --require-hashes -r requirements.txt``: downloads from
  PyPI; the package test builds and installs the same package from the same lock offline, and scripts/test
  installs the lock with ``--require-hashes`` on every run.
- docker, aws, kubectl and helm commands: they need a daemon, an AWS account or a cluster. The lines of
  those blocks that are the bot's (``image-mirror map``, ``rewrite --in-place``, the post-renderer) run.
- ``image-mirror webhook --cert /tls/...``: paths inside the pod; tests/integration/test_webhook.py runs the
  same flags with real certificates.
- bench/README.md: benchmarks, minutes long, run by hand.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.harness.package import install_package, run_installed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(sh|bash|shell|console)\n(.*?)```", re.DOTALL)

# The first line of each shell block -> "run" (a test below runs it) or the reason it is not run.
BLOCKS = {
    "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/image-mirror preview \\": "run",
    "./scripts/test": "the suite itself",
    "pipx install .                 # image-mirror on PATH, in a venv of its own": "PyPI download",
    "pip install --require-hashes -r requirements.txt && pip install --no-deps .": "PyPI download",
    "image-mirror map nginx:1.25.3": "run",
    "docker tag 048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn/dockerhub/nginx:1.25.3 nginx:1.25.3": "docker",
    "docker compose config | image-mirror rewrite - > compose.mirror.yaml": "docker",
    "aws ecr get-login-password --region cn-northwest-1 \\": "aws",
    "kubectl create secret docker-registry ecr-mirror \\": "kubectl",
    "image-mirror rewrite --in-place task-definition.json": "run",
    "helm show values bitnami/redis --version 18.6.1 > redis-values.yaml": "helm",
    "cat > mirror-images.sh <<'SH'": "run",
    "# rewrite files in place (atomically; permissions, line ends and a BOM are kept)": "run",
    "kubectl kustomize .          # preview: the images now point at the mirror": "kubectl",
    "image-mirror webhook --cert /tls/tls.crt --key /tls/tls.key \\": "paths inside the pod",
    "docker build -f webhook/Dockerfile -t 048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn/tools/image-mirror-webhook:0.1.0 .": "docker",  # noqa: E501
    "kubectl apply -f webhook/namespace.yaml": "kubectl",
    "kubectl -n image-mirror rollout status deploy/image-mirror-webhook": "kubectl",
}


def shell_blocks() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for match in _BLOCK.finditer(path.read_text(encoding="utf-8")):
            found.append((path.name, match.group(2)))
    return found


def block(first_line: str) -> str:
    (text,) = [text for _, text in shell_blocks() if text.strip().splitlines()[0].strip() == first_line]
    return text


def test_every_shell_block_is_run_or_says_why_not() -> None:
    firsts = {text.strip().splitlines()[0].strip() for _, text in shell_blocks()}
    assert firsts == set(BLOCKS), f"unlisted: {firsts - set(BLOCKS)}; gone: {set(BLOCKS) - firsts}"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_package(tmp_path_factory.mktemp("doc-commands"))


def checkout_like(tmp_path: Path) -> Path:
    """A user's repository: the mirror/ folder (this repository's config, the examples' mirrored list)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "mirror").mkdir()
    shutil.copy(ROOT / "mirror" / "config.yml", tmp_path / "mirror" / "config.yml")
    shutil.copy(EXAMPLES / "mirrored-images.txt", tmp_path / "mirror" / "mirrored-images.txt")
    return tmp_path


def test_readme_first_command(venv: Path) -> None:
    text = block("python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/image-mirror preview \\")
    # The install is the package test's (no download here); the command after it runs as written.
    command = text.split("&& .venv/bin/", 2)[2]
    result = run_installed(venv, ROOT, command)
    assert result.returncode == 0, result.stderr
    assert "| Line | Source | Mirror path |" in result.stdout
    assert "`048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn/dockerhub/redis:7.2.4`" in result.stdout


def test_docker_map(venv: Path) -> None:
    lines = block("image-mirror map nginx:1.25.3").splitlines()
    result = run_installed(venv, ROOT, lines[0])
    assert result.returncode == 0, result.stderr
    assert result.stdout == lines[1].removeprefix("# ") + "\n"


@pytest.mark.parametrize(
    ("guide", "source", "expected"),
    [
        ("docker.md", "compose.yaml", "compose.rewritten.yaml"),
        ("ecs.md", "task-definition.json", "task-definition.rewritten.json"),
        ("helm.md", "values.yaml", "values.rewritten.yaml"),
        ("kubernetes.md", "deployment.yaml", "deployment.rewritten.yaml"),
    ],
)
def test_rewrite_commands_in_the_text_run_in_docs_examples(venv: Path, guide: str, source: str, expected: str) -> None:
    command = f"image-mirror rewrite {source} --mirrored mirrored-images.txt"
    assert f"`{command}` prints" in (ROOT / "docs" / guide).read_text()
    result = run_installed(venv, EXAMPLES, command)  # the config is found at the repository root
    assert result.returncode == 0, result.stderr
    assert result.stdout == (EXAMPLES / expected).read_text()


def test_ecs_rewrite_in_place(venv: Path, tmp_path: Path) -> None:
    work = checkout_like(tmp_path)
    shutil.copy(EXAMPLES / "task-definition.json", work / "task-definition.json")
    command = block("image-mirror rewrite --in-place task-definition.json").splitlines()[0]
    result = run_installed(venv, work, command)
    assert result.returncode == 0, result.stderr
    assert (work / "task-definition.json").read_text() == (EXAMPLES / "task-definition.rewritten.json").read_text()


def test_kubernetes_in_place_then_check(venv: Path, tmp_path: Path) -> None:
    work = checkout_like(tmp_path)
    (work / "k8s").mkdir()
    shutil.copy(EXAMPLES / "deployment.yaml", work / "k8s" / "deployment.yaml")
    text = block("# rewrite files in place (atomically; permissions, line ends and a BOM are kept)")
    commands = [line for line in text.splitlines() if line.startswith("image-mirror")]
    assert commands == ["image-mirror rewrite --in-place k8s/*.yaml", "image-mirror rewrite --check k8s/*.yaml"]
    assert run_installed(venv, work, commands[1]).returncode == 1  # before: a mirrored image is still upstream
    result = run_installed(venv, work, commands[0])
    assert result.returncode == 0, result.stderr
    assert (work / "k8s" / "deployment.yaml").read_text() == (EXAMPLES / "deployment.rewritten.yaml").read_text()
    assert run_installed(venv, work, commands[1]).returncode == 0


def test_helm_post_renderer_from_any_directory(venv: Path, tmp_path: Path) -> None:
    text = block("cat > mirror-images.sh <<'SH'")
    script = text.split("\nhelm install", 1)[0]  # helm itself needs a cluster
    mirrored = EXAMPLES / "mirrored-images.txt"
    script = script.replace("/path/to/mirror/mirrored-images.txt", str(mirrored))  # the placeholder the text names
    work = checkout_like(tmp_path)
    assert run_installed(venv, work, script).returncode == 0
    # helm runs it from wherever helm runs, with the rendered manifests on stdin
    elsewhere = work / "charts" / "redis"
    elsewhere.mkdir(parents=True)
    manifests = (EXAMPLES / "deployment.yaml").read_text()
    result = run_installed(venv, elsewhere, f"{work}/mirror-images.sh", stdin=manifests)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (EXAMPLES / "deployment.rewritten.yaml").read_text()
