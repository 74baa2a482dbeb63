"""Limits hold at copy time: ``limits.max_image_bytes`` in ``sync`` and ``daily`` before any blob moves, and
``daily``'s per-run caps of tags and bytes, which leave the rest for the next run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.cli import main
from tests.harness import figures
from tests.harness.images import list_tags, push_image
from tests.harness.mirror_repo import mirrored_lines, setup_repo
from tests.harness.proxy import CountingProxy
from tests.harness.registry import RegistryServer


def _limit(root: Path, **limits: int) -> None:
    path = root / "mirror" / "config.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["limits"] = limits
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def test_an_image_repushed_bigger_after_approval_is_refused_before_any_blob_moves(
    source: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    small = push_image(source, "team/app", "1.0", seed=1)
    with CountingProxy(registry) as target:
        setup_repo(tmp_path, source.host, target.host, [])
        _limit(tmp_path, max_image_bytes=small.blob_bytes)
        (tmp_path / "mirror" / "required-images.txt").write_text(f"{source.host}/team/app:1.0\n")
        assert main(["sync"]) == 0  # approved at this size
        big = push_image(source, "team/app", "1.0", seed=2, layers=(small.blob_bytes * 4,))
        assert big.blob_bytes > small.blob_bytes
        target.reset()
        capsys.readouterr()
        assert main(["sync"]) == 1
        assert target.blob_uploads() == []  # nothing moved
        assert target.count(method="PUT", path="/manifests/") == 0
    assert "per image (limits.max_image_bytes); nothing was copied" in capsys.readouterr().out
    assert mirrored_lines(tmp_path) == [f"{source.host}/team/app:1.0@{small.digest}"]

    # daily checks the same limit.
    push_image(source, "team/big", "2.0", seed=3, layers=(small.blob_bytes * 4,))
    setup_repo(tmp_path, source.host, registry.host, ["team/big"])
    _limit(tmp_path, max_image_bytes=small.blob_bytes)
    assert main(["daily"]) == 1
    assert list_tags(registry, "up/team/big") == []
    figures.count("images over a size limit refused before copying", 2)


def test_daily_caps_tags_and_bytes_per_run_and_defers_the_rest(
    source: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    images = [push_image(source, "team/app", f"1.{n}", seed=n) for n in range(3)]
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    setup_repo(tmp_path, source.host, registry.host, ["team/app"], max_tags_per_run=2)
    assert main(["daily"]) == 0
    assert len(list_tags(registry, "up/team/app")) == 2
    assert r"deferred to the next run: 1 tag over daily.max\_tags\_per\_run \(2\)" in summary.read_text()
    assert main(["daily"]) == 0  # the next run takes the rest
    assert list_tags(registry, "up/team/app") == ["1.0", "1.1", "1.2"]

    # Bytes: room for one image per run.
    more = [push_image(source, "team/app", f"2.{n}", seed=10 + n) for n in range(2)]
    setup_repo(tmp_path, source.host, registry.host, ["team/app"], max_bytes_per_run=max(i.blob_bytes for i in more))
    summary.write_text("")
    assert main(["daily"]) == 0
    assert len([tag for tag in list_tags(registry, "up/team/app") if tag.startswith("2.")]) == 1
    text = summary.read_text()
    assert "1 deferred to the next run" in text and r"over daily.max\_bytes\_per\_run" in text
    assert main(["daily"]) == 0
    assert [tag for tag in list_tags(registry, "up/team/app") if tag.startswith("2.")] == ["2.0", "2.1"]
    assert len(mirrored_lines(tmp_path)) == len(images) + len(more)
    figures.count("tags deferred by a per-run cap", 2)
