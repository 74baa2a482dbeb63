"""``sync --commit`` racing with a person's commit to mirrored-images.txt: neither change is lost.

The person adds one line and removes another; the bot adds the images it copied. The commit lands either
between the bot's read of the file and its write (the write is refused as stale, read again, merged and
retried) or while the copy runs, before the bot reads the file at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from tests.harness import figures
from tests.harness.bot_process import Checkout
from tests.harness.github_fake import CommitFake
from tests.harness.images import PushedImage, get_manifest_digest, push_image
from tests.harness.proxy import CountingProxy, Fault, ProxyRequest
from tests.harness.registry import RegistryServer

REPO = "octo/mirror"
PATH = "mirror/mirrored-images.txt"
KEPT = "docker.io/library/nginx:1.25@sha256:" + "1" * 64
REMOVED = "docker.io/library/redis:7@sha256:" + "2" * 64
ADDED = "docker.io/library/busybox:1.36@sha256:" + "3" * 64


def human_edit(fake: CommitFake) -> None:
    """A person's commit: one line added, one removed (the rest of the file as it is on the branch)."""
    current = (fake.file(REPO, PATH) or b"").decode()
    lines = [line for line in current.splitlines() if line != REMOVED] + [ADDED]
    fake.commit(REPO, "main", {PATH: ("\n".join(sorted(lines)) + "\n").encode()}, message="Edit the list by hand")


@pytest.fixture
def images(source: RegistryServer) -> list[PushedImage]:
    return [push_image(source, "team/app", "1", seed=1), push_image(source, "team/tool", "2", kind="docker-list")]


def start(
    tmp_path: Path,
    source: RegistryServer,
    target: str,
    images: list[PushedImage],
    fake: CommitFake,
    monkeypatch: pytest.MonkeyPatch,
) -> Checkout:
    """A checkout whose list and repository both record KEPT and REMOVED, with the bot about to copy ``images``."""
    checkout = Checkout.create(tmp_path, source.host, target, [image.reference for image in images])
    recorded = f"{KEPT}\n{REMOVED}\n"
    checkout.mirrored.write_text(recorded, encoding="utf-8")
    fake.add_repo(REPO, files={PATH: recorded.encode()})
    monkeypatch.chdir(checkout.path)
    monkeypatch.setenv("DOCKER_CONFIG", str(checkout.path / "docker"))
    return checkout


def expected(images: list[PushedImage]) -> list[str]:
    return sorted([KEPT, ADDED, *(f"{image.reference}@{image.digest}" for image in images)])


def test_a_commit_between_the_bots_read_and_write_keeps_both_changes(
    source: RegistryServer,
    registry: RegistryServer,
    images: list[PushedImage],
    commit_github: CommitFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = commit_github
    start(tmp_path, source, registry.host, images, fake, monkeypatch)
    fake.before_put.append(lambda: human_edit(fake))
    assert main(["sync", "--commit"]) == 0
    assert (fake.file(REPO, PATH) or b"").decode().splitlines() == expected(images)
    puts = fake.requests_to("PUT", rf"/repos/{REPO}/contents/.*")
    assert len(puts) == 2  # the first write was refused as stale, the second merged onto the person's commit
    messages = [commit.message for commit in fake.commits.values()]
    assert "Edit the list by hand" in messages
    for image in images:
        assert get_manifest_digest(registry, f"src/{image.repository}", image.tag) == image.digest
    figures.count("human commits kept through commit-back races")
    figures.count("images verified digest-exact at the target", len(images))
    figures.count("wrong entries in mirrored-images.txt", 0)


def test_a_commit_while_the_copy_runs_keeps_both_changes(
    source: RegistryServer,
    registry: RegistryServer,
    images: list[PushedImage],
    commit_github: CommitFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = commit_github
    edited: list[str] = []

    def commit_during_the_copy(request: ProxyRequest) -> Fault | None:
        if request.method == "PUT" and "/manifests/" in request.path and not edited:
            edited.append(request.path)
            human_edit(fake)
        return None

    with CountingProxy(registry, fault=commit_during_the_copy) as target:
        checkout = start(tmp_path, source, target.host, images, fake, monkeypatch)
        assert main(["sync", "--commit"]) == 0
    assert edited, "the person's commit never happened"
    assert (fake.file(REPO, PATH) or b"").decode().splitlines() == expected(images)
    assert len(fake.requests_to("PUT", rf"/repos/{REPO}/contents/.*")) == 1  # read after the person's commit
    # The checkout's own copy never saw the person's commit; the repository is what counts.
    assert REMOVED in checkout.mirrored_lines()
    for image in images:
        assert get_manifest_digest(registry, f"src/{image.repository}", image.tag) == image.digest
    figures.count("human commits kept through commit-back races")
    figures.count("images verified digest-exact at the target", len(images))
    figures.count("wrong entries in mirrored-images.txt", 0)
