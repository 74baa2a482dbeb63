"""The ECR adapter against moto in server mode (the ECR control plane: repositories, tokens, IAM)."""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3  # type: ignore[import-untyped]
import pytest
import yaml
from moto.core.authorization import enable_iam_authentication

from bot.cli import main
from bot.config import Config, EcrConfig, parse_config
from bot.errors import AuthError, AwsError, Failure
from bot.registry.auth import Credentials, Login, env_key
from bot.settings import Settings
from bot.targets.aws import MIN_REFRESH_INTERVAL_SECONDS, Ecr, make_client
from bot.targets.ecr import (
    EcrLogins,
    explain_denied,
    is_ecr_target,
    locate,
    parse_registry_host,
    registry_action,
    registry_host,
)
from tests.harness.github_fake import CommitFake
from tests.harness.images import RegistryClient as HarnessClient
from tests.harness.images import get_manifest_digest, list_tags, push_image
from tests.harness.registry import RegistryFactory, RegistryServer

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
# moto hands out this password for its default account (deterministic per moto version).
MOTO_PASSWORD = f"{ACCOUNT}-auth-token"
TARGET = registry_host(ACCOUNT, REGION)


def ecr_config(moto_url: str, **ecr: object) -> Config:
    return parse_config({"target": {"registry": TARGET}, "ecr": {"endpoint_url": moto_url, **ecr}})


def adapter(config: Config, log: io.StringIO | None = None, clock: list[float] | None = None) -> Ecr:
    now = clock if clock is not None else [time.time()]
    in_actions = Settings.from_environ(os.environ).in_actions  # what the command line passes
    client = make_client(locate(config), config.ecr.endpoint_url)
    return Ecr(client, config.ecr, locate(config), log=log or io.StringIO(), clock=lambda: now[0], mask=in_actions)


# -- hosts (pure) ---------------------------------------------------------------------------------------------


def test_registry_host_follows_the_partition() -> None:
    assert registry_host("048912060910", "cn-northwest-1") == "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn"
    assert registry_host(ACCOUNT, "eu-west-1") == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert parse_registry_host("048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn") == (
        "048912060910",
        "cn-northwest-1",
    )
    assert parse_registry_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com") == (ACCOUNT, "us-gov-west-1")
    assert parse_registry_host("ghcr.io") is None
    assert parse_registry_host("123.dkr.ecr.us-east-1.amazonaws.com") is None


def test_ecr_target_detection_and_location() -> None:
    assert is_ecr_target(Config())  # the default target is the original service's ECR registry
    assert not is_ecr_target(parse_config({"target": {"registry": "registry.example.com"}}))
    config = parse_config(
        {"target": {"registry": "mirror.example.com"}, "ecr": {"registry_id": ACCOUNT, "region": REGION}}
    )
    assert is_ecr_target(config)
    assert (locate(config).account, locate(config).region) == (ACCOUNT, REGION)
    assert (locate(Config()).account, locate(Config()).region) == ("048912060910", "cn-northwest-1")


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("HEAD", "/v2/a/b/manifests/1", "ecr:BatchGetImage"),
        ("PUT", "/v2/a/b/manifests/1", "ecr:PutImage"),
        ("HEAD", "/v2/a/blobs/sha256:1", "ecr:BatchCheckLayerAvailability"),
        ("GET", "/v2/a/blobs/sha256:1", "ecr:GetDownloadUrlForLayer"),
        ("POST", "/v2/a/blobs/uploads/", "ecr:InitiateLayerUpload"),
        ("PATCH", "/v2/a/blobs/uploads/u", "ecr:UploadLayerPart"),
        ("PUT", "/v2/a/blobs/uploads/u", "ecr:CompleteLayerUpload"),
        ("GET", "/v2/a/tags/list", "ecr:ListImages"),
    ],
)
def test_registry_requests_map_to_iam_actions(method: str, path: str, action: str) -> None:
    assert registry_action(method, path) == action


# -- login ----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_login_outside_actions_prints_no_secret(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # '::add-mask::SECRET' hides the secret only on an Actions runner; anywhere else it would print it.
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    log = io.StringIO()
    login = adapter(ecr_config(moto_url, registry_url="127.0.0.1:5443"), log, [time.time()]).login()
    assert login.password == MOTO_PASSWORD
    assert log.getvalue() == ""


@pytest.mark.usefixtures("aws_env")
def test_login_masks_the_token_and_refreshes_at_most_once_per_interval(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    log = io.StringIO()
    clock = [time.time()]
    ecr = adapter(ecr_config(moto_url, registry_url="127.0.0.1:5443"), log, clock)
    login = ecr.login()
    assert (login.username, login.password) == ("AWS", MOTO_PASSWORD)
    assert login.registry_url == "https://127.0.0.1:5443"
    assert MOTO_PASSWORD not in repr(login)
    masked = log.getvalue().splitlines()
    token = base64.b64encode(f"AWS:{MOTO_PASSWORD}".encode()).decode()
    assert masked == [f"::add-mask::{token}", f"::add-mask::{MOTO_PASSWORD}"]
    assert ecr.registry_host == "127.0.0.1:5443"
    # moto's token expired in 2015: it is used anyway, and fetched again only after the minimum interval.
    for _ in range(5):
        ecr.login()
    assert ecr.token_requests == 1
    clock[0] += MIN_REFRESH_INTERVAL_SECONDS + 1
    ecr.login()
    assert ecr.token_requests == 2


@pytest.mark.usefixtures("aws_env")
def test_a_fresh_token_is_kept_until_shortly_before_it_expires(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    ecr = adapter(ecr_config(moto_url), clock=clock)
    login = ecr.login()
    assert login.registry_url == f"https://{TARGET}"  # moto's proxy endpoint
    # Pretend the token is valid for 12 hours, as real ones are.
    monkeypatch.setattr(
        ecr, "_login", type(login)(login.username, login.password, login.registry_url, clock[0] + 12 * 3600)
    )
    clock[0] += 11 * 3600
    ecr.login()
    assert ecr.token_requests == 1
    clock[0] += 50 * 60  # 10 minutes before expiry: refresh
    ecr.login()
    assert ecr.token_requests == 2


# -- repositories ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_repositories_are_created_once_with_the_configured_settings(moto_url: str) -> None:
    config = ecr_config(
        moto_url,
        tag_mutability="IMMUTABLE",
        scan_on_push=True,
        encryption="AES256",
        tags={"team": "platform", "managed-by": "image-mirror"},
        public_read_policy=True,
    )
    ecr = adapter(config)
    assert ecr.ensure_repository("settings/dockerhub/nginx") is True
    assert ecr.ensure_repository("settings/dockerhub/nginx") is False
    # A second run (new adapter) finds it existing and leaves it alone.
    assert adapter(config).ensure_repository("settings/dockerhub/nginx") is False

    client: ECRClient = boto3.client("ecr", region_name=REGION, endpoint_url=moto_url)
    repo = client.describe_repositories(repositoryNames=["settings/dockerhub/nginx"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"]["encryptionType"] == "AES256"
    tags = client.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {"team": "platform", "managed-by": "image-mirror"}
    policy = json.loads(client.get_repository_policy(repositoryName="settings/dockerhub/nginx")["policyText"])
    statement = policy["Statement"][0]
    assert statement["Principal"] == "*"
    assert sorted(statement["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]


@pytest.mark.usefixtures("aws_env")
def test_no_policy_unless_asked(moto_url: str) -> None:
    ecr = adapter(ecr_config(moto_url))
    assert ecr.ensure_repository("nopolicy/quay/calico/node")
    client: ECRClient = boto3.client("ecr", region_name=REGION, endpoint_url=moto_url)
    with pytest.raises(client.exceptions.RepositoryPolicyNotFoundException):
        client.get_repository_policy(repositoryName="nopolicy/quay/calico/node")
    repo = client.describe_repositories(repositoryNames=["nopolicy/quay/calico/node"])["repositories"][0]
    assert repo["imageTagMutability"] == "MUTABLE"


@pytest.mark.usefixtures("aws_env")
def test_a_denied_permission_names_the_iam_action(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_url)
    iam.create_user(UserName="pull-only")
    iam.put_user_policy(
        UserName="pull-only",
        PolicyName="token-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="pull-only")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    ecr = adapter(ecr_config(moto_url))
    with enable_iam_authentication():
        assert ecr.login().username == "AWS"
        with pytest.raises(AwsError, match=r"needs the IAM action ecr:CreateRepository") as raised:
            ecr.ensure_repository("denied/dockerhub/nginx")
    assert "create repository denied/dockerhub/nginx" in str(raised.value)


def test_missing_credentials_say_how_to_provide_them(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    ecr = adapter(ecr_config(moto_url))
    with pytest.raises(AwsError, match=r"no AWS credentials found.*configure-aws-credentials"):
        ecr.login()


def test_a_missing_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    with pytest.raises(AwsError, match=r"no AWS region.*ecr\.region"):
        make_client(
            locate(parse_config({"target": {"registry": "mirror.example.com"}, "ecr": {"registry_id": ACCOUNT}})), None
        )


def test_kms_settings_reach_create_repository(moto_url: str, aws_env: None) -> None:
    config = ecr_config(moto_url, encryption="KMS", kms_key="arn:aws:kms:us-east-1:123456789012:key/abc")
    assert config.ecr == EcrConfig(
        endpoint_url=moto_url, encryption="KMS", kms_key="arn:aws:kms:us-east-1:123456789012:key/abc"
    )
    ecr = adapter(config)
    assert ecr.ensure_repository("kms/gcr/pause")
    client: ECRClient = boto3.client("ecr", region_name=REGION, endpoint_url=moto_url)
    repo = client.describe_repositories(repositoryNames=["kms/gcr/pause"])["repositories"][0]
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"


# -- the data plane: moto for the control plane, a TLS registry with moto's token as the registry --------------


@pytest.fixture
def ecr_registry(registry_factory: RegistryFactory) -> Iterator[RegistryServer]:
    server = registry_factory(auth="basic", tls=True, username="AWS", password=MOTO_PASSWORD)
    yield server
    server.stop()


def write_repo(root: Path, moto_url: str, data_plane: RegistryServer, upstream: str, **ecr: object) -> None:
    mirror = root / "mirror"
    mirror.mkdir(exist_ok=True)
    config = {
        "target": {"registry": TARGET},
        "rules": [{"source": upstream, "target": "up"}],
        "ecr": {"endpoint_url": moto_url, "registry_url": data_plane.url, **ecr},
    }
    (mirror / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.mark.usefixtures("aws_env")
def test_daily_into_ecr_creates_repositories_and_logs_in_with_the_token(
    moto_url: str,
    ecr_registry: RegistryServer,
    basic_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = basic_registry  # the source needs its own credentials, from the environment
    stem = env_key(registry.host)
    monkeypatch.setenv(stem + "_USERNAME", "user")
    monkeypatch.setenv(stem + "_PASSWORD", "pass")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # the runner is what reads the ::add-mask:: commands
    monkeypatch.chdir(tmp_path)
    image = push_image(registry, "daily/tool", "1.0")
    push_image(registry, "daily/tool", "1.1-rc1", seed=3)
    write_repo(tmp_path, moto_url, ecr_registry, registry.host, tags={"owner": "mirror"})
    (tmp_path / "mirror" / "required-images-daily.txt").write_text(f"{registry.host}/daily/tool\n", encoding="utf-8")

    assert main(["daily", "--ca-bundle", str(ecr_registry.ca_bundle)]) == 0
    assert get_manifest_digest(ecr_registry, "up/daily/tool", "1.0") == image.digest
    assert list_tags(ecr_registry, "up/daily/tool") == ["1.0"]
    client: ECRClient = boto3.client("ecr", region_name=REGION, endpoint_url=moto_url)
    names = [repo["repositoryName"] for repo in client.describe_repositories()["repositories"]]
    assert "up/daily/tool" in names
    lines = (tmp_path / "mirror" / "mirrored-images.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [f"{registry.host}/daily/tool:1.0@{image.digest}"]
    out = capsys.readouterr().out
    assert f"::add-mask::{MOTO_PASSWORD}" in out
    assert out.count(MOTO_PASSWORD) == 1  # only in the mask command itself


@pytest.mark.usefixtures("aws_env")
def test_a_refused_token_is_explained_and_nothing_is_recorded(
    moto_url: str,
    registry_factory: RegistryFactory,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    data_plane = registry_factory(auth="basic", tls=True, username="AWS", password="another-registry-token")
    push_image(registry, "daily/tool", "1.0")
    write_repo(tmp_path, moto_url, data_plane, registry.host)
    (tmp_path / "mirror" / "required-images-daily.txt").write_text(f"{registry.host}/daily/tool\n", encoding="utf-8")
    assert main(["daily", "--ca-bundle", str(data_plane.ca_bundle)]) == 1
    assert not (tmp_path / "mirror" / "mirrored-images.txt").exists()
    err = capsys.readouterr().err
    assert "ECR refused the authorization token" in err
    data_plane.stop()


def denial(method: str, url: str, status: int, message: str = "DENIED: no") -> Failure:
    return Failure.of(AuthError(f"{method} {url}: {status} {message}", status=status, method=method, url=url))


def test_explain_denied_names_the_action_for_a_permission_denial_only() -> None:
    put = denial("PUT", "https://127.0.0.1:5443/v2/up/app/manifests/1.0", 403)
    assert (
        explain_denied(put, "127.0.0.1:5443") == "the AWS identity needs the IAM action ecr:PutImage on this repository"
    )
    assert explain_denied(put, "127.0.0.1:9999") is None  # another registry: nothing to add
    upload = denial("POST", "https://127.0.0.1:5443/v2/up/app/blobs/uploads/?mount=sha256:1&from=a", 403)
    assert "ecr:InitiateLayerUpload" in (explain_denied(upload, "127.0.0.1:5443") or "")
    expired = denial(
        "GET", "https://127.0.0.1:5443/v2/up/app/manifests/1", 403, "DENIED: Your authorization token has expired."
    )
    hint = explain_denied(expired, "127.0.0.1:5443") or ""
    assert "expired" in hint and "IAM" not in hint
    refused = denial("GET", "https://127.0.0.1:5443/v2/up/app/manifests/1", 401, "UNAUTHORIZED")
    assert "refused the authorization token" in (explain_denied(refused, "127.0.0.1:5443") or "")
    missing = Failure.of(AuthError("x", status=None, method="GET", url="https://127.0.0.1:5443/v2/"))
    assert explain_denied(missing, "127.0.0.1:5443") is None


@pytest.mark.usefixtures("aws_env")
def test_sync_into_ecr_records_verified_images_and_commits_back(
    moto_url: str,
    registry_factory: RegistryFactory,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    commit_github: CommitFake,
) -> None:
    data_plane = registry_factory(auth="basic", tls=True, username="AWS", password=MOTO_PASSWORD, accesslog=True)
    web = push_image(registry, "library/web", "1.0", layers=(50_000,))
    tool = push_image(registry, "team/tool", "2", kind="docker-list", seed=1)
    write_repo(tmp_path, moto_url, data_plane, registry.host, tags={"owner": "mirror"}, public_read_policy=True)
    mirror = tmp_path / "mirror"
    other = "quay.io/kept/image:v1@sha256:" + "e" * 64
    (mirror / "mirrored-images.txt").write_text(other + "\n", encoding="utf-8")
    (mirror / "required-images.txt").write_text(
        f"{registry.host}/library/web:1.0\n{registry.host}/team/tool:2  # note\n{registry.host}/team/missing:9\n",
        encoding="utf-8",
    )
    github = commit_github
    github.add_repo("octo/mirror", files={"mirror/mirrored-images.txt": f"{other}\n".encode()})
    # Someone else records an image between the bot's read and its write: the commit is retried.
    concurrent = "ghcr.io/raced/in:1@sha256:" + "d" * 64
    github.before_put.append(
        lambda: github.commit(
            "octo/mirror", "main", {"mirror/mirrored-images.txt": f"{other}\n{concurrent}\n".encode()}
        )
    )
    summary = tmp_path / "summary.md"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    try:
        argv = ["sync", "--ca-bundle", str(data_plane.ca_bundle), "--commit"]
        assert main(argv) == 1  # team/missing fails; the others are still recorded and committed
        out, err = capsys.readouterr()

        assert get_manifest_digest(data_plane, "up/library/web", "1.0") == web.digest
        assert get_manifest_digest(data_plane, "up/team/tool", "2") == tool.digest
        client: ECRClient = boto3.client("ecr", region_name=REGION, endpoint_url=moto_url)
        repos = {repo["repositoryName"]: repo for repo in client.describe_repositories()["repositories"]}
        assert {"up/library/web", "up/team/tool"} <= set(repos)
        assert "up/team/missing" not in repos  # no repository for an image that does not exist
        policy = json.loads(client.get_repository_policy(repositoryName="up/team/tool")["policyText"])
        assert policy["Statement"][0]["Principal"] == "*"

        recorded = [
            f"{registry.host}/library/web:1.0@{web.digest}",
            f"{registry.host}/team/tool:2@{tool.digest}",
        ]
        assert (mirror / "mirrored-images.txt").read_text(encoding="utf-8").splitlines() == sorted([*recorded, other])
        assert f"FAILED {registry.host}/team/missing:9: " in err
        assert "the source image does not exist" in err
        committed = (github.file("octo/mirror", "mirror/mirrored-images.txt") or b"").decode().splitlines()
        assert committed == sorted([*recorded, other, concurrent])
        assert len(github.requests_to("PUT", r"/repos/octo/mirror/contents/.*")) == 2  # the conflict, the retry
        table = summary.read_text(encoding="utf-8")
        assert f"| {registry.host}/library/web:1.0 | {TARGET}/up/library/web:1.0 | linux/amd64, linux/arm64 |" in table
        assert f"| {registry.host}/team/missing:9 | {TARGET}/up/team/missing:9 | - | 0 B | - | failed: " in table
        assert "committed mirror/mirrored-images.txt to main" in table
        assert MOTO_PASSWORD not in out.replace(f"::add-mask::{MOTO_PASSWORD}", "")

        # The next run: the list already pins what upstream has, so the ECR registry is not even contacted.
        (mirror / "required-images.txt").write_text(
            f"{registry.host}/library/web:1.0\n{registry.host}/team/tool:2\n", encoding="utf-8"
        )
        before = len(data_plane.access_log_lines())
        summary.write_text("")
        assert main(argv) == 0
        assert data_plane.access_log_lines()[before:] == []
        assert "0 copied, 2 unchanged, 0 failed" in summary.read_text(encoding="utf-8")
        assert "mirror/mirrored-images.txt is unchanged; nothing to commit" in summary.read_text(encoding="utf-8")
        assert len(github.requests_to("PUT", r"/repos/octo/mirror/contents/.*")) == 2
    finally:
        data_plane.stop()


@pytest.mark.usefixtures("aws_env")
def test_registry_credentials_follow_the_token_refresh(moto_url: str) -> None:
    clock = [time.time()]
    ecr = adapter(ecr_config(moto_url), clock=clock)
    base = Credentials()
    base.add("quay.io", "robot", "secret")
    credentials = EcrLogins(base, EcrConfig().sources)
    credentials.add_registry(TARGET, ecr)
    login = credentials.get(TARGET)
    assert login is not None and (login.username, login.password) == ("AWS", MOTO_PASSWORD)
    assert credentials.get("quay.io") == Login("robot", "secret")  # other registries keep their logins
    for _ in range(3):
        credentials.get(TARGET)
    assert ecr.token_requests == 1
    clock[0] += MIN_REFRESH_INTERVAL_SECONDS + 1  # moto's token is long expired: the next request refreshes
    credentials.get(TARGET)
    assert ecr.token_requests == 2


@pytest.mark.usefixtures("aws_env")
def test_sync_copies_new_and_moved_images_only(
    moto_url: str,
    ecr_registry: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    same = push_image(registry, "team/app", "1", seed=1)
    moved = push_image(registry, "team/app", "2", seed=2)
    new = push_image(registry, "team/app", "3", seed=3)
    gone = push_image(registry, "team/gone", "1", seed=4)
    with HarnessClient(registry) as pusher:
        pusher.delete_manifest("team/gone", gone.digest)  # deleted upstream after it was mirrored
    write_repo(tmp_path, moto_url, ecr_registry, registry.host)
    mirror = tmp_path / "mirror"
    old = "sha256:" + "0" * 64
    listed = [
        f"{registry.host}/team/app:1@{same.digest}",
        f"{registry.host}/team/app:2@{old}",
        f"{registry.host}/team/gone:1@{gone.digest}",
    ]
    (mirror / "mirrored-images.txt").write_text("\n".join(listed) + "\n", encoding="utf-8")
    requests = [f"{registry.host}/team/app:{tag}" for tag in ("1", "2", "3")] + [f"{registry.host}/team/gone:1"]
    (mirror / "required-images.txt").write_text("\n".join(requests) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))

    assert main(["sync", "--ca-bundle", str(ecr_registry.ca_bundle)]) == 0
    assert list_tags(ecr_registry, "up/team/app") == ["2", "3"]  # tag 1 was already mirrored at its digest
    assert get_manifest_digest(ecr_registry, "up/team/app", "2") == moved.digest
    assert (mirror / "mirrored-images.txt").read_text(encoding="utf-8").splitlines() == [
        f"{registry.host}/team/app:1@{same.digest}",
        f"{registry.host}/team/app:2@{moved.digest}",
        f"{registry.host}/team/app:3@{new.digest}",
        f"{registry.host}/team/gone:1@{gone.digest}",
    ]
    # --all checks every entry at the target: tag 1 is copied now, the gone image fails.
    assert main(["sync", "--all", "--ca-bundle", str(ecr_registry.ca_bundle)]) == 1
    assert list_tags(ecr_registry, "up/team/app") == ["1", "2", "3"]
