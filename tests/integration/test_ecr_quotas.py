"""A sync into the ECR stand-in under sustained per-API quotas: the run slows down, no image fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.config import parse_config
from bot.rules import Mapper
from tests.harness.ecr_standin import EcrStandIn
from tests.harness.images import Kind, PushedImage, push_image
from tests.harness.registry import RegistryServer
from tests.harness.target_check import check_mirrored_list

IMAGES = 24


def push_catalogue(registry: RegistryServer, count: int) -> list[PushedImage]:
    """``count`` small images, mostly single manifests (fewer requests keep the test short), every fifth an
    index."""
    kinds: tuple[Kind, ...] = ("oci-index", "oci-manifest", "docker-manifest", "oci-manifest", "docker-manifest")
    return [
        push_image(registry, f"team/app{index}", "1.0", kind=kinds[index % 5], layers=(2048,), seed=index)
        for index in range(count)
    ]


def test_a_sustained_quota_slows_the_sync_and_fails_no_image(
    ecr_standin: EcrStandIn,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    images = push_catalogue(registry, IMAGES)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    config = ecr_standin.config(rules=[{"source": registry.host, "target": "up"}])
    (mirror / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (mirror / "required-images.txt").write_text(
        "".join(f"{registry.host}/{image.repository}:{image.tag}\n" for image in images), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    ecr_standin.blob_mounting = True
    ecr_standin.throttle(10, burst=1)  # every ECR API: 10 requests/s, no bursts

    assert main(["sync", "--ca-bundle", ecr_standin.ca_bundle]) == 0, capsys.readouterr().err

    assert ecr_standin.count(status=429) > 0  # the quota did bite
    lines = (mirror / "mirrored-images.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == sorted(f"{registry.host}/{i.repository}:{i.tag}@{i.digest}" for i in images)
    assert ecr_standin.registry is not None
    mapper = Mapper(parse_config(config))
    assert check_mirrored_list(mirror / "mirrored-images.txt", mapper, ecr_standin.registry) == []
