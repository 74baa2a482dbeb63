"""The ``mirror/`` folder of a checkout the bot runs in: write its config and daily list, read its mirrored list."""

from __future__ import annotations

from pathlib import Path

import yaml


def setup_repo(root: Path, upstream: str, target: str, repositories: list[str], **daily: object) -> None:
    """``mirror/config.yml`` (one rule: ``upstream`` to ``up/`` under ``target``, the ``daily`` settings) and
    ``mirror/required-images-daily.txt`` naming ``repositories`` of ``upstream``."""
    mirror = root / "mirror"
    mirror.mkdir(exist_ok=True)
    config = {"target": {"registry": target}, "rules": [{"source": upstream, "target": "up"}], "daily": daily}
    (mirror / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    lines = "".join(f"{upstream}/{name}\n" for name in repositories)
    (mirror / "required-images-daily.txt").write_text("# daily\n" + lines, encoding="utf-8")


def mirrored_lines(root: Path) -> list[str]:
    """The lines of ``mirror/mirrored-images.txt``; none when the file does not exist."""
    path = root / "mirror" / "mirrored-images.txt"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
