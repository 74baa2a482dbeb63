"""Commit-back at the original service's scale: its 74,212-line list, pinned with digests (about 7 MB), through
``sync --commit``, PyGithub and the GitHub fake.

Over 1 MB the contents API answers without content ("encoding": "none"), so the list must be read through the
git blobs API; the write is one contents ``PUT`` of the whole file, so exactly one commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bot.cli import main
from tests.harness.bot_process import Checkout
from tests.harness.github_fake import CommitFake
from tests.harness.images import get_manifest_digest, push_image
from tests.harness.registry import RegistryServer

REPO = "octo/mirror"
PATH = "mirror/mirrored-images.txt"
UPSTREAM = Path(__file__).parents[1] / "data" / "upstream" / "upstream-mirrored-images.txt"


def pinned_upstream() -> str:
    """The original service's list with a made-up digest on every line, as the bot would have recorded it."""
    lines = UPSTREAM.read_text(encoding="utf-8").splitlines()
    return "".join(f"{line}@sha256:{hashlib.sha256(line.encode()).hexdigest()}\n" for line in lines if line.strip())


@pytest.mark.slow
def test_sync_commits_two_new_images_into_the_74k_line_list(
    source: RegistryServer,
    registry: RegistryServer,
    commit_github: CommitFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = commit_github
    old = pinned_upstream()
    assert old.count("\n") == 74212 and len(old) > 7_000_000
    images = [push_image(source, "team/app", "1", seed=1), push_image(source, "team/tool", "2", kind="docker-list")]
    checkout = Checkout.create(tmp_path, source.host, registry.host, [image.reference for image in images])
    checkout.mirrored.write_text(old, encoding="utf-8")
    fake.add_repo(REPO, files={PATH: old.encode()})
    commits_before = len(fake.history(REPO, "main"))
    monkeypatch.chdir(checkout.path)
    monkeypatch.setenv("DOCKER_CONFIG", str(checkout.path / "docker"))

    assert main(["sync", "--commit"]) == 0

    assert "committed mirror/mirrored-images.txt to main" in capsys.readouterr().err
    new_lines = (fake.file(REPO, PATH) or b"").decode().splitlines()
    added = {f"{image.reference}@{image.digest}" for image in images}
    assert set(old.splitlines()) <= set(new_lines)  # every old line kept
    assert set(new_lines) - set(old.splitlines()) == added  # and the new images, nothing else
    assert len(new_lines) == 74212 + 2
    assert new_lines == sorted(new_lines)
    history = fake.history(REPO, "main")
    assert len(history) == commits_before + 1  # exactly one commit
    assert "[skip ci]" in history[0].message
    assert len(fake.requests_to("PUT", rf"/repos/{REPO}/contents/.*")) == 1
    assert fake.requests_to("GET", rf"/repos/{REPO}/git/blobs/[0-9a-f]{{40}}")  # read past the 1 MB contents limit
    for image in images:
        assert get_manifest_digest(registry, f"src/{image.repository}", image.tag) == image.digest
