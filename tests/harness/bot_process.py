"""Run ``python -m bot`` as a child process, as a workflow step does: signals and kills reach a real process.

Usage::

    checkout = Checkout.create(tmp_path / "a", source.host, target.host, ["127.0.0.1:5000/team/app:1"])
    process = checkout.start_sync()
    assert process.wait(timeout=60) == 0
    assert checkout.mirrored_lines() == [...]

A checkout is a directory with ``mirror/config.yml`` (one rule: the source registry -> ``src/`` under the
target), ``mirror/required-images.txt`` and, after a run, ``mirror/mirrored-images.txt``. The child runs in
that directory with an empty docker config and without the test's GitHub environment unless given one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config, parse_config
from bot.rules import Mapper

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Checkout:
    """A working directory the bot runs in; see the module docstring."""

    path: Path
    source: str
    target: str

    @classmethod
    def create(cls, path: Path, source: str, target: str, images: Sequence[str]) -> Checkout:
        checkout = cls(path, source, target)
        (path / "mirror").mkdir(parents=True, exist_ok=True)
        (path / "docker").mkdir(exist_ok=True)
        checkout.config_path.write_text(json.dumps(checkout.config_data()), encoding="utf-8")
        checkout.write_images(images)
        return checkout

    def config_data(self) -> dict[str, object]:
        return {"target": {"registry": self.target}, "rules": [{"source": self.source, "target": "src"}]}

    @property
    def config(self) -> Config:
        return parse_config(self.config_data())

    @property
    def mapper(self) -> Mapper:
        return Mapper(self.config)

    @property
    def config_path(self) -> Path:
        return self.path / "mirror" / "config.yml"

    @property
    def required(self) -> Path:
        return self.path / "mirror" / "required-images.txt"

    @property
    def mirrored(self) -> Path:
        return self.path / "mirror" / "mirrored-images.txt"

    def write_images(self, images: Sequence[str]) -> None:
        self.required.write_text("".join(f"{image}\n" for image in images), encoding="utf-8")

    def mirrored_lines(self) -> list[str]:
        if not self.mirrored.exists():
            return []
        return [line for line in self.mirrored.read_text(encoding="utf-8").splitlines() if line.strip()]

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GITHUB_", "MIRROR_", "DOCKER_", "AWS_")) and key != "PYTHONPATH"
        }
        env.update(
            PYTHONPATH=str(ROOT),
            DOCKER_CONFIG=str(self.path / "docker"),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra or {})
        return env

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``python -m bot ARGS`` here; stdout and stderr are pipes (read them with communicate())."""
        return subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=self.path,
            env=self.environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def start_sync(self, *extra: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """``sync`` of this checkout's lists, four images and blobs at a time unless ``extra`` says otherwise."""
        return self.start("sync", "--concurrency", "4", *extra, env=env)

    def sync(self, *extra: str, timeout: float = 60) -> tuple[int, str, str]:
        """Run ``sync`` to the end: exit status, stdout, stderr."""
        process = self.start_sync(*extra)
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
