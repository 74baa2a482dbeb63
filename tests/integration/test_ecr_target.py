"""The ECR target kind end to end: moto for the control plane, a TLS registry (behind a counting proxy where
a test needs to see or fault requests) as the data plane.

- ``copy SRC DST`` into ECR logs in, creates the repository and honours ``ecr.registry_url``.
- ECR's 403 for an expired token (https://docs.aws.amazon.com/AmazonECR/latest/userguide/common-errors-docker.html
  #error-403) gets one fresh login and the request once more, also mid-upload.
- An IMMUTABLE repository whose tag holds another digest fails that image before any blob moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3  # type: ignore[import-untyped]
import pytest
import yaml

from bot.cli import main
from bot.targets import aws
from bot.targets.ecr import registry_host
from tests.harness.images import get_manifest_digest, push_image
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
    repository = ecr_client(moto_url).describe_repositories(repositoryNames=["copied/cli"])["repositories"][0]
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


@pytest.mark.usefixtures("aws_env")
def test_an_immutable_tag_at_another_digest_fails_before_any_blob_moves(
    moto_url: str,
    data_plane: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moved = push_image(registry, "team/pinned", "1.0", seed=7, layers=(200_000,))
    fresh = push_image(registry, "team/pinned", "2.0", seed=8)
    ecr = ecr_client(moto_url)
    ecr.create_repository(repositoryName="up/team/pinned", imageTagMutability="IMMUTABLE")
    # The mirror copied 1.0 earlier; upstream moved the tag since.
    old = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}
    ecr.put_image(repositoryName="up/team/pinned", imageManifest=json.dumps(old), imageTag="1.0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    write_config(tmp_path, moto_url, data_plane.url, registry.host)
    (tmp_path / "mirror" / "required-images.txt").write_text(
        f"{registry.host}/team/pinned:1.0\n{registry.host}/team/pinned:2.0\n", encoding="utf-8"
    )
    before = len(data_plane.access_log_lines())
    assert main(["sync", "--ca-bundle", str(data_plane.ca_bundle), "--concurrency", "1"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {registry.host}/team/pinned:1.0: " in err
    assert "IMMUTABLE tags and 1.0 already holds" in err and "nothing was pushed" in err
    assert "put-image-tag-mutability" in err  # the fix
    # Tag 2.0 was copied; nothing of 1.0 moved: its layer (the only 200 kB blob) was never uploaded.
    assert get_manifest_digest(data_plane, "up/team/pinned", "2.0") == fresh.digest
    writes = [line for line in data_plane.access_log_lines()[before:] if '"PUT ' in line or '"POST ' in line]
    assert writes, "tag 2.0 was pushed"
    only_moved = {blob.digest for blob in moved.blobs} - {blob.digest for blob in fresh.blobs}
    assert only_moved and not any(digest in line for line in writes for digest in only_moved)
    assert not any(child in line for line in writes for child in moved.children)
    assert not any("/manifests/1.0" in line for line in writes)
    recorded = (tmp_path / "mirror" / "mirrored-images.txt").read_text(encoding="utf-8")
    assert "pinned:2.0@" in recorded and "pinned:1.0" not in recorded
