"""``python -m bot sync`` and ``copy``, and the ``bot.sync`` use case, end to end against real registries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import parse_config
from bot.errors import AwsError
from bot.lists import MirroredIndex, parse_list
from bot.reference import parse_reference
from bot.registry.auth import Credentials
from bot.registry.factory import build_client
from bot.rules import Mapper, Target
from bot.sync import pending, sync
from bot.units import binary_size
from tests.harness.images import get_manifest, get_manifest_digest, list_repositories, push_image
from tests.harness.proxy import CountingProxy
from tests.harness.registry import RegistryFactory, RegistryServer


@pytest.fixture
def target(basic_registry: RegistryServer) -> RegistryServer:
    """The target needs credentials to push (``user``/``pass``); ``source`` is anonymous."""
    return basic_registry


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, target: RegistryServer, tmp_path: Path) -> None:
    """Target credentials from the environment, no docker config.json of the machine."""
    stem = "MIRROR_AUTH_" + target.host.replace(".", "_").replace(":", "_")
    monkeypatch.setenv(stem + "_USERNAME", "user")
    monkeypatch.setenv(stem + "_PASSWORD", "pass")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.chdir(tmp_path)


def write_config(tmp_path: Path, source: RegistryServer | CountingProxy, target: RegistryServer) -> Path:
    path = tmp_path / "config.yml"
    config = {"target": {"registry": target.host}, "rules": [{"source": source.host, "target": "src"}]}
    path.write_text(json.dumps(config))
    return path


def write_list(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "required-images.txt"
    path.write_text("# images\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.usefixtures("env")
def test_sync_copies_every_entry_and_reports_failures(
    source: RegistryServer, target: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = push_image(source, "library/web", "1.0", attestations=True)
    docker = push_image(source, "team/tool", "2", kind="docker-list", seed=1)
    single = push_image(source, "team/solo", "3", kind="oci-manifest", seed=2)
    config = write_config(tmp_path, source, target)
    listing = write_list(
        tmp_path,
        f"{source.host}/library/web:1.0",
        f"{source.host}/team/tool:2  # a comment",
        f"{source.host}/team/solo:3",
        f"{source.host}/team/missing:9",
    )
    argv = ["sync", "--config", str(config), "--registry", f"{target.host}/mirror", "--list", str(listing)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert f"FAILED  {source.host}/team/missing:9 -> {target.host}/mirror/src/team/missing:9" in out
    assert "the source image does not exist" in out
    assert "4 images: 3 ok (0 already up to date), 1 failed" in out
    assert get_manifest_digest(target, "mirror/src/library/web", "1.0") == index.digest
    assert get_manifest_digest(target, "mirror/src/team/tool", "2") == docker.digest
    assert get_manifest_digest(target, "mirror/src/team/solo", "3") == single.digest

    listing.write_text("\n".join(listing.read_text().splitlines()[:-1]) + "\n")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("already up to date") == 4  # three lines and the summary
    assert "3 images: 3 ok (3 already up to date), 0 failed; moved 0 B" in out


@pytest.mark.usefixtures("env")
def test_sync_dry_run_changes_nothing(
    source: RegistryServer, target: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = push_image(source, "library/web", "1.0", layers=(100_000,))
    config = write_config(tmp_path, source, target)
    listing = write_list(tmp_path, f"{source.host}/library/web:1.0")
    argv = ["sync", "--config", str(config), "--list", str(listing), "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"DRY-RUN {source.host}/library/web:1.0 -> {target.host}/src/library/web:1.0: would copy" in out
    assert f"would move {binary_size(image.blob_bytes)}" in out
    assert list_repositories(target) == set()


@pytest.mark.usefixtures("env")
def test_sync_never_contacts_registries_outside_the_rules(
    source: RegistryServer,
    target: RegistryServer,
    registry_factory: RegistryFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = registry_factory()
    push_image(other, "evil/app", "1")
    with CountingProxy(other) as watched:
        config = write_config(tmp_path, source, target)
        listing = write_list(tmp_path, f"{watched.host}/evil/app:1")
        assert main(["sync", "--config", str(config), "--list", str(listing)]) == 1
        assert watched.records == []
        assert f"registry {watched.host} is not allowed" in capsys.readouterr().out
    other.stop()


@pytest.mark.usefixtures("env")
def test_sync_platform_filter_and_bad_lines(
    source: RegistryServer, target: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = push_image(source, "library/web", "1.0")
    config = write_config(tmp_path, source, target)
    listing = write_list(tmp_path, f"{source.host}/library/web:1.0", "Not A Valid Ref")
    argv = ["sync", "--config", str(config), "--list", str(listing), "--platform", "linux/arm64"]
    assert main(argv) == 1  # the bad line fails the run, the good one is still copied
    captured = capsys.readouterr()
    assert "required-images.txt:3:4: whitespace inside a reference" in captured.err
    assert get_manifest_digest(target, "src/library/web", "1.0") == image.platforms["linux/arm64"]


def test_copy_command(
    source: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    image = push_image(source, "library/web", "1.0")
    src, dst = f"{source.host}/library/web:1.0", f"{registry.host}/copies/web:1.0"
    assert main(["copy", src, dst]) == 0
    out = capsys.readouterr().out
    assert f"{image.digest} (linux/amd64, linux/arm64)" in out
    assert get_manifest_digest(registry, "copies/web", "1.0") == image.digest
    assert main(["copy", src, dst]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert main(["copy", src, dst, "--platform", "linux"]) == 2
    assert "--platform: 'linux' is not a platform" in capsys.readouterr().err


def test_sync_use_case_returns_data_and_runs_prepare(
    source: RegistryServer, target: RegistryServer, tmp_path: Path
) -> None:
    web = push_image(source, "library/web", "1.0")
    push_image(source, "team/denied", "1")
    config = parse_config({"target": {"registry": target.host}, "rules": [{"source": source.host, "target": "src"}]})
    prepared: list[str] = []

    def prepare(target_: Target) -> None:
        prepared.append(target_.repository)
        if "denied" in target_.repository:
            raise AwsError("cannot create repository src/team/denied: AccessDenied (ecr:CreateRepository)")

    credentials = Credentials()
    credentials.add(target.host, "user", "pass")
    entries = [
        parse_reference(f"{source.host}/library/web:1.0"),
        parse_reference(f"{source.host}/library/web:1.0"),  # duplicates are copied once
        parse_reference(f"{source.host}/team/denied:1"),
    ]
    with build_client(config, credentials=credentials) as client:
        report = sync(entries, Mapper(config), client, prepare=prepare, concurrency=2)
    assert sorted(prepared) == ["src/library/web", "src/team/denied"]
    assert [(r.ok, r.verified) for r in report.results] == [(True, True), (False, False)]
    ok, failed = report.results
    assert ok.pinned_source == f"{source.host}/library/web:1.0@{web.digest}"
    assert ok.target_digest == web.digest and ok.bytes_moved == web.blob_bytes
    assert failed.reason is not None and "ecr:CreateRepository" in failed.reason
    assert report.verified() == (ok,)
    assert get_manifest(target, "src/team/denied", "1") is None
    # a second run finds the image at the target with HEAD requests: no target needs preparing
    prepared.clear()
    with build_client(config, credentials=credentials) as client:
        again = sync(entries[:1], Mapper(config), client, prepare=prepare)
    assert again.results[0].skipped and prepared == []


def test_pending_heads_pinned_tags_once_and_keeps_the_order(source: RegistryServer, tmp_path: Path) -> None:
    same = push_image(source, "team/same", "1", seed=1)
    moved = push_image(source, "team/moved", "1", seed=2)
    old = push_image(source, "team/moved", "0", seed=3)
    with CountingProxy(source) as proxy:
        host = proxy.host
        config = parse_config({"target": {"registry": "mirror.example"}, "rules": [{"source": host, "target": "m"}]})
        client = build_client(config, credentials=Credentials())
        refs = [
            parse_reference(f"{host}/team/new:1"),  # not mirrored yet: copied without asking
            parse_reference(f"{host}/team/moved:1"),  # pinned at an older digest: copied again
            parse_reference(f"{host}/team/same:1"),  # pinned at today's digest: unchanged
            parse_reference(f"{host}/team/gone:1"),  # pinned, deleted upstream: kept as recorded
            parse_reference(f"{host}/team/same:1"),  # a duplicate: counted once
        ]
        mirrored = MirroredIndex(
            parse_list(
                f"{host}/team/moved:1@{old.digest}\n{host}/team/same:1@{same.digest}\n"
                f"{host}/team/gone:1@{moved.digest}\n",
                "mirrored-images.txt",
            ).entries
        )
        copy, unchanged = pending(refs, mirrored, Mapper(config), client, concurrency=4)
        heads = proxy.count(method="HEAD", path=r"/v2/.+/manifests/")
    assert [str(ref) for ref in copy] == [f"{host}/team/new:1", f"{host}/team/moved:1"]
    assert [str(result.source) for result in unchanged] == [f"{host}/team/same:1", f"{host}/team/gone:1"]
    assert [result.target_digest for result in unchanged] == [same.digest, moved.digest]
    assert heads == 3  # moved, same and gone; never the unlisted one nor the duplicate


@pytest.mark.usefixtures("env")
def test_a_failure_names_its_image_once(
    source: RegistryServer, target: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, source, target)
    listing = write_list(tmp_path, f"{source.host}/team/missing:9")
    argv = ["sync", "--config", str(config), "--registry", f"{target.host}/mirror", "--list", str(listing)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    image, mirror = f"{source.host}/team/missing:9", f"{target.host}/mirror/src/team/missing:9"
    reason = "the source image does not exist (no such tag or digest)"
    assert f"FAILED  {image} -> {mirror}: {reason}\n" in captured.out
    assert f"FAILED {image}: {reason}\n" in captured.err
    assert f"{image}: {image}" not in captured.out + captured.err


@pytest.mark.usefixtures("env")
def test_an_unmapped_image_fails_with_its_name_said_once(
    source: RegistryServer, target: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push_image(source, "team/solo", "3", kind="oci-manifest", seed=2)
    config = write_config(tmp_path, source, target)
    listing = write_list(tmp_path, f"{source.host}/team/solo:3", "registry.example.com/team/tool:1")
    argv = ["sync", "--config", str(config), "--registry", target.host, "--list", str(listing)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert failed[0].startswith("FAILED  registry.example.com/team/tool:1 -> -: registry registry.example.com is")
    assert failed[0].count("registry.example.com/team/tool:1") == 1
    recorded = (tmp_path / "mirror" / "mirrored-images.txt").read_text().splitlines()
    assert [line.split("@")[0] for line in recorded] == [f"{source.host}/team/solo:3"]
