"""The ECR target kind end to end: moto for the control plane, a TLS registry (behind a counting proxy where
a test needs to see or fault requests) as the data plane.

- ``copy SRC DST`` into ECR logs in, creates the repository and honours ``ecr.registry_url``.
- ECR's 403 for an expired token (https://docs.aws.amazon.com/AmazonECR/latest/userguide/common-errors-docker.html
  #error-403) gets one fresh login and the request once more, also mid-upload.
- An IMMUTABLE repository whose tag holds another digest fails that image before any blob moves.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3  # type: ignore[import-untyped]
import pytest
import yaml

from bot.cli import main
from bot.rules import Target
from bot.targets import aws
from bot.targets.ecr import registry_host
from tests.harness.ecr_standin import TARGET_HOST, EcrStandIn
from tests.harness.images import KiB, LayerSpec, get_manifest_digest, push_image
from tests.harness.proxy import CountingProxy, Fault, FaultRule
from tests.harness.registry import RegistryFactory, RegistryServer

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

ACCOUNT = "123456789012"
REGION = "us-east-1"
MOTO_PASSWORD = f"{ACCOUNT}-auth-token"
TARGET = registry_host(ACCOUNT, REGION)
EXPIRED = json.dumps(
    {"errors": [{"code": "DENIED", "message": "Your authorization token has expired. Reauthenticate and try again."}]}
).encode()


@pytest.fixture
def data_plane(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    with registry_factory(auth="basic", tls=True, username="AWS", password=MOTO_PASSWORD, accesslog=True) as server:
        yield server


@pytest.fixture
def logins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token fetch (``ecr:GetAuthorizationToken``) of the run, counted on its way to moto."""
    fetched: list[str] = []
    refresh = aws.Ecr.refresh

    def counted(self: aws.Ecr) -> aws.RegistryLogin:
        fetched.append(self.location.account or "")
        return refresh(self)

    monkeypatch.setattr(aws.Ecr, "refresh", counted)
    return fetched


def ecr_client(moto_url: str) -> ECRClient:
    client: ECRClient = boto3.client("ecr", region_name=REGION, endpoint_url=moto_url)
    return client


def write_config(root: Path, moto_url: str, registry_url: str, source: str, **ecr: object) -> None:
    (root / "mirror").mkdir(exist_ok=True)
    config = {
        "target": {"registry": TARGET},
        "rules": [{"source": source, "target": "up"}],
        "ecr": {"endpoint_url": moto_url, "registry_url": registry_url, **ecr},
    }
    (root / "mirror" / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.mark.usefixtures("aws_env")
def test_copy_into_ecr_logs_in_creates_the_repository_and_uses_registry_url(
    moto_url: str,
    data_plane: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logins: list[str],
) -> None:
    image = push_image(registry, "tools/cli", "1.0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    write_config(tmp_path, moto_url, data_plane.url, registry.host, tag_mutability="IMMUTABLE")
    argv = [
        "copy",
        f"{registry.host}/tools/cli:1.0",
        f"{TARGET}/copied/cli:1.0",
        "--ca-bundle",
        str(data_plane.ca_bundle),
    ]
    assert main(argv) == 0
    assert get_manifest_digest(data_plane, "copied/cli", "1.0") == image.digest
    with contextlib.closing(ecr_client(moto_url)) as ecr:
        repository = ecr.describe_repositories(repositoryNames=["copied/cli"])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE"  # created with the config's settings
    assert logins == [ACCOUNT]


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", r"/manifests/"), ("POST", r"/blobs/uploads/$"), ("PUT", r"/blobs/uploads/.+")],
    ids=["manifest", "upload-start", "upload-commit"],
)
def test_an_expired_token_gets_one_fresh_login_and_a_retry(
    moto_url: str,
    data_plane: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logins: list[str],
    method: str,
    path: str,
) -> None:
    image = push_image(registry, "tools/expiry", "1.0", platforms=("linux/amd64",))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    expired = FaultRule(
        Fault.respond(403, body=EXPIRED, headers={"Content-Type": "application/json"}), method=method, path=path
    )
    with CountingProxy(data_plane, fault=expired) as proxy:
        write_config(tmp_path, moto_url, proxy.registry.url, registry.host)
        argv = ["copy", f"{registry.host}/tools/expiry:1.0", f"{TARGET}/expiry/{method.lower()}:1.0"]
        assert main([*argv, "--ca-bundle", str(data_plane.ca_bundle)]) == 0
        assert expired.hits == 1
        assert proxy.count(method=method, path=path, status=403) == 1
    assert get_manifest_digest(data_plane, f"expiry/{method.lower()}", "1.0") == image.digest
    assert logins == [ACCOUNT, ACCOUNT]  # the first login, and one fresh login after the 403


@pytest.mark.usefixtures("aws_env")
def test_a_token_that_stays_expired_is_not_explained_as_a_missing_permission(
    moto_url: str,
    data_plane: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    logins: list[str],
) -> None:
    push_image(registry, "tools/stale", "1.0", platforms=("linux/amd64",))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    always = FaultRule(
        Fault.respond(403, body=EXPIRED, headers={"Content-Type": "application/json"}),
        method="PUT",
        path=r"/manifests/",
        times=None,
    )
    with CountingProxy(data_plane, fault=always) as proxy:
        write_config(tmp_path, moto_url, proxy.registry.url, registry.host)
        argv = ["copy", f"{registry.host}/tools/stale:1.0", f"{TARGET}/stale/app:1.0"]
        assert main([*argv, "--ca-bundle", str(data_plane.ca_bundle)]) == 1
    err = capsys.readouterr().err
    assert "authorization token has expired" in err
    assert "IAM action" not in err
    assert len(logins) == 2  # one renewal, not one per request


# -- against the ECR stand-in (tests/harness/ecr_standin.py) ---------------------------------------------------


def standin_repo(root: Path, standin: EcrStandIn, source: str, lines: list[str]) -> None:
    (root / "mirror").mkdir(exist_ok=True)
    config = standin.config(rules=[{"source": source, "target": "up"}])
    (root / "mirror" / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "mirror" / "required-images.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def test_an_immutable_tag_at_another_digest_fails_before_any_blob_moves(
    ecr_standin: EcrStandIn,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The mirror copied team/pinned:1.0 earlier; upstream moved the tag since, and the repository is IMMUTABLE.
    ecr_standin.create_repository("up/team/pinned", mutability="IMMUTABLE")
    old = push_image(ecr_standin.view(), "up/team/pinned", "1.0", seed=6, platforms=("linux/amd64",))
    moved = push_image(registry, "team/pinned", "1.0", seed=7, layers=(200_000,))
    fresh = push_image(registry, "team/pinned", "2.0", seed=8)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    standin_repo(tmp_path, ecr_standin, registry.host, [moved.reference, fresh.reference])
    ecr_standin.exchanges.clear()

    assert main(["sync", "--ca-bundle", ecr_standin.ca_bundle, "--concurrency", "1"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {moved.reference}: " in err
    assert "IMMUTABLE tags and 1.0 already holds" in err and "nothing was pushed" in err
    assert "put-image-tag-mutability" in err  # the fix
    assert get_manifest_digest(ecr_standin.view(), "up/team/pinned", "1.0") == old.digest
    assert get_manifest_digest(ecr_standin.view(), "up/team/pinned", "2.0") == fresh.digest
    # Nothing of 1.0 moved: no upload of its own blobs, no refused manifest (the stand-in's 400 TAG_INVALID).
    only_moved = {blob.digest for blob in moved.blobs} - {blob.digest for blob in fresh.blobs}
    assert only_moved and not any(digest in e.path for e in ecr_standin.exchanges for digest in only_moved)
    assert ecr_standin.count(api="PutImage", status=400) == 0
    assert not any(e.path.endswith("/manifests/1.0") and e.method == "PUT" for e in ecr_standin.exchanges)
    recorded = (tmp_path / "mirror" / "mirrored-images.txt").read_text(encoding="utf-8")
    assert "pinned:2.0@" in recorded and "pinned:1.0" not in recorded


def test_copy_into_the_standin_creates_the_repository_it_would_refuse(
    ecr_standin: EcrStandIn, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = push_image(registry, "tools/new", "1.0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    standin_repo(tmp_path, ecr_standin, registry.host, [])
    target = f"{TARGET_HOST}/fresh/tool:1.0"
    assert main(["copy", image.reference, target, "--ca-bundle", ecr_standin.ca_bundle]) == 0
    assert get_manifest_digest(ecr_standin.view(), "fresh/tool", "1.0") == image.digest
    # No write met NAME_UNKNOWN: the repository was created before the first push (a HEAD before it may 404).
    assert ecr_standin.count(status=404, method="POST") == ecr_standin.count(status=404, method="PUT") == 0
    assert ecr_standin.count(api="PutImage", status=201) >= 1


def test_tokens_expired_mid_run_are_renewed_once_and_the_run_succeeds(
    ecr_standin: EcrStandIn, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import parse_config
    from bot.registry.copy import Copier, ImageLocation
    from bot.registry.factory import ClientOptions
    from bot.targets import open_target

    images = [push_image(registry, f"team/app{i}", "1.0", seed=i, platforms=("linux/amd64",)) for i in range(3)]
    # A real token is hours old when it expires; a refused HEAD (no body says why) renews only an old one.
    monkeypatch.setattr(aws, "MIN_RENEW_SECONDS", 0)
    config = parse_config(ecr_standin.config(rules=[{"source": registry.host, "target": "up"}]))
    options = ClientOptions(
        endpoints={}, verify=ecr_standin.ca_bundle, insecure_registries=(), concurrency=2, environ={}
    )
    with open_target(config, options, extra_hosts=(registry.host,)) as target:
        assert ecr_standin.token_requests == 1

        def prepare(location: ImageLocation) -> None:
            target.prepare(Target(location.host, location.repository, location.tag, location.digest))

        with Copier(target.client, concurrency=2, prepare=prepare, mount_policy=target.mount_policy) as copier:
            first = copier.copy(ImageLocation.parse(images[0].reference), ImageLocation.parse(f"{TARGET_HOST}/up/a:1"))
            ecr_standin.expire_tokens()
            pairs = [
                (ImageLocation.parse(image.reference), ImageLocation.parse(f"{TARGET_HOST}/up/b{i}:1"))
                for i, image in enumerate(images[1:])
            ]
            outcomes = copier.copy_many(pairs)
    assert first.digest_exact and all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    assert ecr_standin.count(status=403) >= 1
    assert ecr_standin.token_requests == 2  # one renewal for every thread that saw the expiry


@pytest.mark.parametrize("mounting", [False, True], ids=["mounting-off", "mounting-on"])
def test_bytes_moved_into_ecr_with_mounts_refused_and_allowed(
    ecr_standin: EcrStandIn, registry: RegistryServer, mounting: bool
) -> None:
    """Four images in four repositories share a 300 KiB base layer. ECR with blob mounting off (its default)
    refuses every mount, so the layer crosses once per repository; with it on, the layer crosses once: later
    repositories mount it from the first, whose pushed manifest references it."""
    from bot.config import parse_config
    from bot.reference import parse_reference
    from bot.registry.factory import ClientOptions
    from bot.sync import sync
    from bot.targets import mapper_for, open_target

    base = (LayerSpec(size=300 * KiB, seed=42, per_platform=False),)
    images = [
        push_image(registry, f"team/app{i}", "1", base_layers=base, seed=i, platforms=("linux/amd64",))
        for i in range(4)
    ]
    shared = set.intersection(*({blob.digest for blob in image.blobs} for image in images))
    (layer,) = [blob for blob in images[0].blobs if blob.digest in shared]
    own = sum(blob.size for image in images for blob in image.blobs if blob.digest not in shared)
    ecr_standin.blob_mounting = mounting
    config = parse_config(ecr_standin.config(rules=[{"source": registry.host, "target": "up"}]))
    options = ClientOptions(
        endpoints={}, verify=ecr_standin.ca_bundle, insecure_registries=(), concurrency=1, environ={}
    )
    with open_target(config, options, extra_hosts=(registry.host,)) as target:
        report = sync(
            [parse_reference(image.reference) for image in images],
            mapper_for(config),
            target.client,
            concurrency=1,
            prepare=target.prepare,
            mount_policy=target.mount_policy,
        )
    assert report.ok and all(result.verified for result in report.results)
    mounted = sum(result.copy.blobs_mounted for result in report.results if result.copy)
    crossings = 1 if mounting else len(images)
    assert report.bytes_moved == own + crossings * layer.size
    assert mounted == len(images) - crossings
    assert ecr_standin.count(api="InitiateLayerUpload", status=201) == mounted
    print(f"ECR blob mounting {'on' if mounting else 'off'}: {report.bytes_moved} bytes moved, {mounted} mounted")


# -- a private ECR registry as a source ---------------------------------------------------------------------


def source_config(root: Path, standin: EcrStandIn, target: RegistryServer, **sources: str) -> None:
    (root / "mirror").mkdir(exist_ok=True)
    config = {
        "target": {"registry": target.host},
        "rules": [{"source": TARGET_HOST, "target": "amazonecr"}],
        "ecr": {"sources": {"endpoint_url": standin.endpoint_url, **sources}},
    }
    (root / "mirror" / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


def no_default_credentials(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Nothing in boto3's default chain: only what ecr.sources names can sign."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(root / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(root / "aws-credentials"))
    (root / "aws-config").write_text("[profile global-readonly]\nregion = us-east-1\n", encoding="utf-8")
    (root / "aws-credentials").write_text(
        "[global-readonly]\naws_access_key_id = AKIAREADONLY\naws_secret_access_key = readonly\n", encoding="utf-8"
    )


def test_a_private_ecr_source_is_read_with_the_profile_of_ecr_sources(
    ecr_standin: EcrStandIn,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ecr_standin.create_repository("eks/pause")
    image = push_image(ecr_standin.view(), "eks/pause", "3.9")
    no_default_credentials(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    source_config(tmp_path, ecr_standin, registry, profile="global-readonly")
    (tmp_path / "mirror" / "required-images.txt").write_text(f"{TARGET_HOST}/eks/pause:3.9\n", encoding="utf-8")
    requests_before = ecr_standin.token_requests

    assert main(["check"]) == 0  # credentials are configured: no warning
    assert "private ECR registry" not in capsys.readouterr().err
    endpoint = f"{TARGET_HOST}={ecr_standin.url}"
    assert main(["sync", "--endpoint", endpoint, "--ca-bundle", ecr_standin.ca_bundle]) == 0
    assert get_manifest_digest(registry, "amazonecr/eks/pause", "3.9") == image.digest
    assert ecr_standin.token_requests == requests_before + 1  # one token, minted with the profile
    recorded = (tmp_path / "mirror" / "mirrored-images.txt").read_text(encoding="utf-8")
    assert recorded == f"{TARGET_HOST}/eks/pause:3.9@{image.digest}\n"


def test_without_source_credentials_check_and_validate_say_what_is_missing(
    ecr_standin: EcrStandIn,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.commands.validate_pr import RegistryUpstream
    from bot.config import load_config
    from bot.lists import MirroredIndex
    from bot.registry.factory import build_client
    from bot.report.comment import render_comment
    from bot.targets import mapper_for, registry_credentials
    from bot.validate import ListChange, validate_changes

    ecr_standin.create_repository("eks/pause")
    push_image(ecr_standin.view(), "eks/pause", "3.9")
    no_default_credentials(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    source_config(tmp_path, ecr_standin, registry)  # no profile, no role
    line = f"{TARGET_HOST}/eks/pause:3.9\n"
    (tmp_path / "mirror" / "required-images.txt").write_text(line, encoding="utf-8")

    assert main(["check"]) == 0  # a warning: the line is valid, the run would lack credentials
    err = capsys.readouterr().err
    assert (
        f"mirror/required-images.txt:1:1: warning: {TARGET_HOST} is a private ECR registry: no AWS credentials" in err
    )
    assert "ecr.sources.profile or ecr.sources.role_arn" in err and "ecr:GetAuthorizationToken" in err

    config = load_config(tmp_path / "mirror" / "config.yml")
    credentials = registry_credentials(config, {})
    endpoints = {TARGET_HOST: ecr_standin.url}
    with build_client(config, credentials=credentials, endpoints=endpoints, verify=ecr_standin.ca_bundle) as client:
        result = validate_changes(
            [ListChange("mirror/required-images.txt", b"", line.encode())],
            mapper=mapper_for(config),
            upstream=RegistryUpstream(client),
            limits=config.limits,
            mirrored=MirroredIndex(()),
        )
    (issue,) = result.lines[0].issues
    assert "is a private ECR registry" in issue.message and "no AWS credentials" in issue.message
    assert "ecr.sources.profile or ecr.sources.role_arn" in issue.fix
    assert "only public images" not in issue.message + issue.fix
    assert "ecr.sources.profile" in render_comment(result)
