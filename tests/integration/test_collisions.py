"""Two sources, one mirror path: ``sync`` and ``daily`` never move a mirror tag to another source's image.

Two rules send two registries to one target path (``shared``). The first source recorded keeps the path; a
second source is refused (at another digest) or copied pinned (declared aliases at the same digest), and
mirrored-images.txt never pins two digests for one mirror tag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.harness import figures
from tests.harness.images import get_manifest_digest, list_tags, push_image
from tests.harness.mirror_repo import mirrored_lines
from tests.harness.registry import RegistryFactory, RegistryServer


def _setup(root: Path, first: str, second: str, target: str, *, aliases: bool = False) -> None:
    mirror = root / "mirror"
    mirror.mkdir(exist_ok=True)
    config: dict[str, object] = {
        "target": {"registry": target},
        "rules": [{"source": first, "target": "shared"}, {"source": second, "target": "shared"}],
    }
    if aliases:
        config["aliases"] = [[first, second]]
    (mirror / "config.yml").write_text(json.dumps(config), encoding="utf-8")


def _request(root: Path, *lines: str) -> None:
    (root / "mirror" / "required-images.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


@pytest.fixture
def second(registry_factory: RegistryFactory) -> RegistryServer:
    return registry_factory()


def test_sync_never_moves_a_tag_another_source_holds(
    source: RegistryServer,
    second: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    first = push_image(source, "app", "1.0", seed=1)
    push_image(second, "app", "1.0", seed=2)  # another image under the same name
    _setup(tmp_path, source.host, second.host, registry.host)

    # One run with both: the first keeps the path, the second is refused before anything moves.
    _request(tmp_path, f"{source.host}/app:1.0", f"{second.host}/app:1.0")
    assert main(["sync"]) == 1
    assert "another image of this run, takes the mirror path" in capsys.readouterr().out
    assert get_manifest_digest(registry, "shared/app", "1.0") == first.digest
    assert mirrored_lines(tmp_path) == [f"{source.host}/app:1.0@{first.digest}"]

    # A later run with the second alone: mirrored-images.txt gives the path to the first source.
    _request(tmp_path, f"{second.host}/app:1.0")
    assert main(["sync"]) == 1
    out = capsys.readouterr().out
    assert f"holds {source.host}/app:1.0@{first.digest} (mirror/mirrored-images.txt:1), another source" in out
    assert get_manifest_digest(registry, "shared/app", "1.0") == first.digest
    assert mirrored_lines(tmp_path) == [f"{source.host}/app:1.0@{first.digest}"]
    figures.count("colliding mirror paths refused", 2)


def test_declared_aliases_share_a_path_while_digests_agree(
    source: RegistryServer,
    second: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    same = push_image(source, "app", "1.0", seed=1)
    assert push_image(second, "app", "1.0", seed=1).digest == same.digest  # the same image on both
    _setup(tmp_path, source.host, second.host, registry.host, aliases=True)
    _request(tmp_path, f"{source.host}/app:1.0")
    assert main(["sync"]) == 0
    _request(tmp_path, f"{second.host}/app:1.0")
    assert main(["sync"]) == 0
    assert mirrored_lines(tmp_path) == sorted(f"{host}/app:1.0@{same.digest}" for host in (source.host, second.host))

    # The alias moves on to another image: it may not take the path with it.
    moved = push_image(second, "app", "1.0", seed=7)
    capsys.readouterr()
    assert main(["sync"]) == 1
    assert f"is at {moved.digest}" in capsys.readouterr().out
    assert get_manifest_digest(registry, "shared/app", "1.0") == same.digest
    assert list_tags(registry, "shared/app") == ["1.0"]
    figures.count("colliding mirror paths refused")


def test_daily_never_moves_a_tag_another_source_holds(
    source: RegistryServer,
    second: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    first = push_image(source, "app", "1.0", seed=1)
    push_image(second, "app", "1.0", seed=2)
    push_image(second, "app", "2.0", seed=3)
    _setup(tmp_path, source.host, second.host, registry.host)
    (tmp_path / "mirror" / "mirrored-images.txt").write_text(f"{source.host}/app:1.0@{first.digest}\n")
    push_image(registry, "shared/app", "1.0", seed=1)
    (tmp_path / "mirror" / "required-images-daily.txt").write_text(f"{second.host}/app\n")
    assert main(["daily"]) == 1
    assert get_manifest_digest(registry, "shared/app", "1.0") == first.digest
    lines = mirrored_lines(tmp_path)
    assert f"{source.host}/app:1.0@{first.digest}" in lines
    assert not any(line.startswith(f"{second.host}/app:1.0") for line in lines)
    assert any(line.startswith(f"{second.host}/app:2.0@") for line in lines)  # a free tag is copied
    figures.count("colliding mirror paths refused")
