"""The guides in docs/ show real input and output: each example is run here and compared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
MIRRORED = str(EXAMPLES / "mirrored-images.txt")
# <!-- example: docs/examples/NAME --> right before a fenced block: the block is that file, verbatim.
_EXAMPLE_BLOCK = re.compile(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```\n", re.DOTALL)

REWRITES = [
    ("deployment.yaml", "deployment.rewritten.yaml"),
    ("values.yaml", "values.rewritten.yaml"),
    ("compose.yaml", "compose.rewritten.yaml"),
    ("task-definition.json", "task-definition.rewritten.json"),
]


@pytest.mark.parametrize(("source", "expected"), REWRITES)
def test_rewrite_examples(source: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rewrite", str(EXAMPLES / source), "--mirrored", MIRRORED]) == 0
    assert capsys.readouterr().out == (EXAMPLES / expected).read_text()


def test_kustomize_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kustomize", str(EXAMPLES / "deployment.yaml"), "--mirrored", MIRRORED]) == 0
    assert capsys.readouterr().out == (EXAMPLES / "kustomization-images.yaml").read_text()


def test_check_flags_the_example_and_passes_its_rewritten_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rewrite", "--check", str(EXAMPLES / "deployment.yaml"), "--mirrored", MIRRORED]) == 1
    assert main(["rewrite", "--check", str(EXAMPLES / "deployment.rewritten.yaml"), "--mirrored", MIRRORED]) == 0
    capsys.readouterr()


def test_guides_quote_the_examples_verbatim() -> None:
    quoted: set[str] = set()
    for guide in sorted(DOCS.glob("*.md")):
        for name, body in _EXAMPLE_BLOCK.findall(guide.read_text()):
            assert (REPO / name).read_text() == body, f"{guide.name}: the block for {name} is out of date"
            quoted.add(name)
    examples = {f"docs/examples/{path.name}" for path in EXAMPLES.iterdir() if path.is_file()}
    assert examples <= quoted, f"examples no guide shows: {sorted(examples - quoted)}"


def test_every_way_of_use_has_a_guide() -> None:
    names = {path.name for path in DOCS.glob("*.md")}
    assert {
        "kubernetes.md",
        "webhook.md",
        "helm.md",
        "kustomize.md",
        "ecs.md",
        "docker.md",
        "ecr-login-china.md",
    } <= names
