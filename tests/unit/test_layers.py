"""The import layers of ARCHITECTURE.md, checked by reading every module's imports (no module is loaded).

Imports inside functions and under ``TYPE_CHECKING`` count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"

# The pure core: decisions as functions of data. It imports nothing of the project outside itself.
CORE = frozenset(
    {
        "bot",
        "bot.addresses",
        "bot.checks",
        "bot.collisions",
        "bot.config",
        "bot.errors",
        "bot.lists",
        "bot.redact",
        "bot.reference",
        "bot.rules",
        "bot.settings",
        "bot.units",
    }
)
# Third-party packages the core may use (parsing only, no I/O beyond files it is handed).
CORE_THIRD_PARTY = frozenset({"yaml"})
GITHUB = ("bot.github", "github")  # the GitHub adapters and PyGithub
ECR = ("bot.targets", "boto3", "botocore", "mypy_boto3_ecr")  # the target adapters and the AWS SDK
EDGE = ("bot.cli", "bot.commands", "bot.__main__")
USE_CASES = frozenset({"bot.daily", "bot.shard", "bot.sync", "bot.validate"})

# Modules outside cli.py and commands/ that still parse options themselves, each with why it is allowed for
# now. An entry goes once its module stops importing argparse (the test below insists).
ARGPARSE_ALLOWED: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, absolute, at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            found.add(prefix)
            # ``from bot import x`` may name a module: count ``bot.x`` when it is one.
            for alias in node.names:
                candidate = f"{prefix}.{alias.name}"
                if (BOT.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    BOT.parent / Path(*candidate.split("."))
                ).is_dir():
                    found.add(candidate)
    return found


MODULES = {module_name(path): imports(path) for path in sorted(BOT.rglob("*.py"))}


def within(name: str, roots: Iterable[str]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def offenders(modules: Iterable[str], forbidden: Iterable[str]) -> dict[str, list[str]]:
    forbidden = tuple(forbidden)
    found = {name: sorted(i for i in MODULES[name] if within(i, forbidden)) for name in modules}
    return {name: bad for name, bad in found.items() if bad}


def test_the_modules_are_found() -> None:
    assert {"bot.cli", "bot.reference", "bot.registry.transport", "bot.github.commit"} <= set(MODULES)
    assert "argparse" in MODULES["bot.cli"]
    assert "bot.errors" in MODULES["bot.reference"]


def test_every_core_module_exists() -> None:
    assert set(CORE) <= set(MODULES)


def test_the_core_imports_only_the_core() -> None:
    core = [name for name in MODULES if name in CORE]
    bad = {
        name: sorted(i for i in MODULES[name] if within(i, ("bot",)) and i not in CORE)
        for name in core
        if any(within(i, ("bot",)) and i not in CORE for i in MODULES[name])
    }
    assert bad == {}, "the core (ARCHITECTURE.md) must not import adapters, use cases or commands"


def test_the_core_uses_no_adapter_package() -> None:
    core = [name for name in MODULES if name in CORE]
    bad = offenders(core, (*GITHUB, *ECR, "requests", "jinja2", "argparse", "ruamel"))
    assert bad == {}
    third_party = {
        name: sorted(
            i.split(".")[0]
            for i in MODULES[name]
            if not within(i, ("bot",)) and not _stdlib(i) and i.split(".")[0] not in CORE_THIRD_PARTY
        )
        for name in core
    }
    assert {name: found for name, found in third_party.items() if found} == {}


def test_the_registry_knows_nothing_of_github_or_ecr() -> None:
    registry = [name for name in MODULES if within(name, ("bot.registry",))]
    assert offenders(registry, (*GITHUB, *ECR, "bot.report", *EDGE, *USE_CASES)) == {}


def test_use_cases_take_adapters_as_parameters() -> None:
    assert offenders(USE_CASES, (*GITHUB, *ECR, *EDGE)) == {}


def test_pointing_workloads_at_the_mirror_needs_no_registry() -> None:
    workloads = [name for name in MODULES if within(name, ("bot.rewrite", "bot.webhook"))]
    assert offenders(workloads, (*GITHUB, *ECR, "bot.registry", "bot.report", *EDGE, *USE_CASES)) == {}


def test_only_the_command_line_parses_options() -> None:
    parsing = {name for name in MODULES if "argparse" in MODULES[name]}
    outside = {name for name in parsing if not within(name, EDGE)}
    assert outside - set(ARGPARSE_ALLOWED) == set(), "argparse belongs to bot/cli.py and bot/commands/"
    stale = set(ARGPARSE_ALLOWED) - outside
    assert stale == set(), "these modules no longer import argparse: remove them from ARGPARSE_ALLOWED"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import argparse\n", {"argparse"}),
        ("def f():\n    from bot.github import actions\n", {"bot.github", "bot.github.actions"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import boto3\n", {"typing", "boto3"}),
        ("from .registry import client\n", {"bot.registry", "bot.registry.client"}),
    ],
)
def test_imports_are_read_at_any_depth(tmp_path: Path, source: str, expected: set[str]) -> None:
    module = tmp_path / "probe.py"
    module.write_text(source, encoding="utf-8")
    assert imports(module, package="bot") == expected


def _stdlib(name: str) -> bool:
    return name.split(".", maxsplit=1)[0] in sys.stdlib_module_names


def layout_modules(readme: str) -> tuple[set[str], set[str]]:
    """The files and the whole folders the README's Layout table names (first column of each row)."""
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    files: set[str] = set()
    folders: set[str] = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        folder = ""
        names = re.findall(r"`([^`]+)`", row.split("|")[1])
        for index, name in enumerate(names):
            if name.endswith("/"):
                folder = name
                if not any(not later.endswith("/") and "/" not in later for later in names[index + 1 :]):
                    folders.add(name)
            elif "/" in name:
                folder = name.rpartition("/")[0] + "/"
                files.add(name)
            else:
                files.add(folder + name)
    return files, folders


def test_the_readme_layout_names_every_module() -> None:
    files, folders = layout_modules((ROOT / "README.md").read_text(encoding="utf-8"))
    modules = {path.relative_to(ROOT).as_posix() for path in BOT.rglob("*.py") if path.name != "__init__.py"}
    missing = {module for module in modules if module not in files and not any(module.startswith(f) for f in folders)}
    assert missing == set(), "add these modules to the Layout table of README.md, saying what each holds"
    assert "bot/commands/" in folders and "bot/cli.py" in files
