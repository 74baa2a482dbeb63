"""The ECR stand-in (tests/harness/ecr_standin.py) against raw HTTP: each ECR behaviour it promises."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import requests
import yaml

from bot.cli import main
from tests.harness.ecr_standin import EcrStandIn, ecr_api
from tests.harness.images import ACCEPT_ALL, get_manifest_digest, push_image, sha256_digest
from tests.harness.registry import RegistryServer

NAME = "up/app"


def session(standin: EcrStandIn, password: str | None = None) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = standin.ca_bundle
    if password is None:
        _user, password = standin.login()
    http.auth = ("AWS", password)
    return http


def errors(response: requests.Response) -> list[tuple[str, str]]:
    return [(item["code"], item["message"]) for item in response.json()["errors"]]


def test_requests_map_to_the_ecr_apis_that_hold_their_quotas() -> None:
    assert ecr_api("HEAD", "/v2/a/b/manifests/1") == "BatchGetImage"
    assert ecr_api("GET", "/v2/a/manifests/sha256:1") == "BatchGetImage"
    assert ecr_api("PUT", "/v2/a/manifests/1") == "PutImage"
    assert ecr_api("HEAD", "/v2/a/blobs/sha256:1") == "BatchCheckLayerAvailability"
    assert ecr_api("GET", "/v2/a/blobs/sha256:1") == "GetDownloadUrlForLayer"
    assert ecr_api("POST", "/v2/a/b/blobs/uploads/") == "InitiateLayerUpload"
    assert ecr_api("PATCH", "/v2/a/blobs/uploads/u") == "UploadLayerPart"
    assert ecr_api("PUT", "/v2/a/blobs/uploads/u") == "CompleteLayerUpload"
    assert ecr_api("GET", "/v2/a/tags/list") == "ListImages"
    assert ecr_api("GET", "/v2/") is None


def test_tokens_come_from_the_control_plane_and_expire_on_demand(ecr_standin: EcrStandIn) -> None:
    anonymous = requests.get(f"{ecr_standin.url}/v2/", verify=ecr_standin.ca_bundle, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    data = ecr_standin.client().get_authorization_token()["authorizationData"][0]
    assert data["expiresAt"].timestamp() > time.time() + 11 * 3600  # a real expiry, not moto's 2015
    _user, first = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert session(ecr_standin, first).get(f"{ecr_standin.url}/v2/", timeout=10).status_code == 200

    ecr_standin.expire_tokens()
    expired = session(ecr_standin, first).get(f"{ecr_standin.url}/v2/", timeout=10)
    assert expired.status_code == 403
    assert errors(expired) == [("DENIED", "Your authorization token has expired. Reauthenticate and try again.")]
    fresh = session(ecr_standin)  # a new GetAuthorizationToken
    assert fresh.get(f"{ecr_standin.url}/v2/", timeout=10).status_code == 200
    assert ecr_standin.token_requests == 2


def test_a_repository_exists_only_once_created_through_the_api(ecr_standin: EcrStandIn) -> None:
    http = session(ecr_standin)
    response = http.post(f"{ecr_standin.url}/v2/{NAME}/blobs/uploads/", timeout=10)
    assert response.status_code == 404
    assert errors(response) == [
        ("NAME_UNKNOWN", f"The repository with name '{NAME}' does not exist in the registry with id '123456789012'")
    ]
    ecr_standin.create_repository(NAME)
    image = push_image(ecr_standin.view(), NAME, "1.0", kind="oci-manifest", platforms=("linux/amd64",))
    assert get_manifest_digest(ecr_standin.registry, NAME, "1.0") == image.digest  # type: ignore[arg-type]


def test_chunks_answer_201_and_manifest_gets_carry_no_digest(ecr_standin: EcrStandIn) -> None:
    ecr_standin.create_repository(NAME)
    image = push_image(ecr_standin.view(), NAME, "1.0", kind="oci-manifest", platforms=("linux/amd64",))
    http = session(ecr_standin)
    started = http.post(f"{ecr_standin.url}/v2/{NAME}/blobs/uploads/", timeout=10)
    assert started.status_code == 202
    location = started.headers["Location"]
    assert location.startswith(f"{ecr_standin.url}/v2/{NAME}/blobs/uploads/")  # points back at the stand-in
    chunk = http.patch(location, data=b"hello", headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert chunk.status_code == 201
    done = http.put(chunk.headers["Location"], params={"digest": sha256_digest(b"hello")}, timeout=10)
    assert done.status_code == 201

    manifest = http.get(f"{ecr_standin.url}/v2/{NAME}/manifests/1.0", headers={"Accept": ACCEPT_ALL}, timeout=10)
    assert manifest.status_code == 200
    assert "Docker-Content-Digest" not in manifest.headers
    assert sha256_digest(manifest.content) == image.digest


def test_blob_downloads_redirect_to_storage_that_refuses_an_authorization_header(ecr_standin: EcrStandIn) -> None:
    ecr_standin.create_repository(NAME)
    image = push_image(ecr_standin.view(), NAME, "1.0", kind="oci-manifest", platforms=("linux/amd64",))
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    http = session(ecr_standin)
    redirect = http.get(f"{ecr_standin.url}/v2/{NAME}/blobs/{layer}", allow_redirects=False, timeout=10)
    assert redirect.status_code == 307
    location = redirect.headers["Location"]
    assert location.startswith(f"{ecr_standin.storage_url}/")  # another host: localhost, not 127.0.0.1

    carried = requests.get(location, auth=("AWS", "token"), verify=ecr_standin.ca_bundle, timeout=10)
    assert carried.status_code == 400
    assert b"<Code>InvalidArgument</Code>" in carried.content
    plain = requests.get(location, verify=ecr_standin.ca_bundle, timeout=10)
    assert plain.status_code == 200
    assert sha256_digest(plain.content) == layer
    ranged = requests.get(location, headers={"Range": "bytes=10-"}, verify=ecr_standin.ca_bundle, timeout=10)
    assert ranged.status_code == 206
    assert ranged.content == plain.content[10:]
    tampered = location.replace("X-Amz-Expires=", "X-Amz-Expires=9")
    assert requests.get(tampered, verify=ecr_standin.ca_bundle, timeout=10).status_code == 403
    missing = http.get(f"{ecr_standin.url}/v2/{NAME}/blobs/{sha256_digest(b'none')}", allow_redirects=False, timeout=10)
    assert missing.status_code == 404


def test_quotas_answer_429_rate_exceeded_without_retry_after(ecr_standin: EcrStandIn) -> None:
    ecr_standin.create_repository(NAME)
    http = session(ecr_standin)
    ecr_standin.throttle({"BatchGetImage": 2}, burst=2)
    url = f"{ecr_standin.url}/v2/{NAME}/manifests/1.0"
    statuses = [http.head(url, timeout=10).status_code for _ in range(5)]
    assert statuses[:2] == [404, 404]  # within the burst: the real answer (no such tag)
    assert 429 in statuses[2:]
    throttled = http.get(url, timeout=10)
    assert throttled.status_code == 429
    assert errors(throttled) == [("TOOMANYREQUESTS", "Rate exceeded")]
    assert "Retry-After" not in throttled.headers
    # Another API keeps its own quota.
    assert http.get(f"{ecr_standin.url}/v2/{NAME}/tags/list", timeout=10).status_code != 429
    time.sleep(0.6)  # the bucket refills at 2/s
    assert http.head(url, timeout=10).status_code == 404
    assert ecr_standin.count(api="BatchGetImage", status=429) >= 2


def test_mounts_only_blobs_a_manifest_of_the_source_references_and_only_when_enabled(
    ecr_standin: EcrStandIn,
) -> None:
    for name in ("a/src", "a/dst", "a/loose"):
        ecr_standin.create_repository(name)
    image = push_image(ecr_standin.view(), "a/src", "1.0", kind="oci-manifest", platforms=("linux/amd64",))
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    http = session(ecr_standin)
    # A blob uploaded to a repository but referenced by no manifest there.
    started = http.post(f"{ecr_standin.url}/v2/a/loose/blobs/uploads/", timeout=10)
    loose = http.put(started.headers["Location"], params={"digest": sha256_digest(b"loose")}, data=b"loose", timeout=10)
    assert loose.status_code == 201

    def mount(digest: str, source: str) -> int:
        url = f"{ecr_standin.url}/v2/a/dst/blobs/uploads/"
        return http.post(url, params={"mount": digest, "from": source}, timeout=10).status_code

    assert mount(layer, "a/src") == 202  # the registry setting is off
    ecr_standin.blob_mounting = True
    assert mount(sha256_digest(b"loose"), "a/loose") == 202  # no manifest references it
    assert mount(layer, "a/src") == 201
    assert http.head(f"{ecr_standin.url}/v2/a/dst/blobs/{layer}", timeout=10).status_code == 200


def test_an_immutable_repository_refuses_a_moved_tag(ecr_standin: EcrStandIn) -> None:
    ecr_standin.create_repository("fixed/app", mutability="IMMUTABLE")
    view = ecr_standin.view()
    first = push_image(view, "fixed/app", "1.0", kind="oci-manifest", platforms=("linux/amd64",))
    again = push_image(view, "fixed/app", "1.0", kind="oci-manifest", platforms=("linux/amd64",))
    assert again.digest == first.digest  # the same manifest again moves nothing: accepted
    moved = push_image(view, "fixed/app", "2.0", kind="oci-manifest", platforms=("linux/amd64",), seed=9)
    http = session(ecr_standin)
    response = http.put(
        f"{ecr_standin.url}/v2/fixed/app/manifests/1.0",
        data=moved.manifest,
        headers={"Content-Type": moved.media_type},
        timeout=10,
    )
    assert response.status_code == 400
    message = (
        "The image tag '1.0' already exists in the 'fixed/app' repository and cannot be overwritten "
        "because the repository is immutable."
    )
    assert errors(response) == [("TAG_INVALID", message)]
    assert get_manifest_digest(ecr_standin.registry, "fixed/app", "1.0") == first.digest  # type: ignore[arg-type]


def test_the_bot_syncs_into_the_stand_in(
    ecr_standin: EcrStandIn,
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stand-in is usable as a sync target: repositories created, login, redirects and mounts coped with."""
    web = push_image(registry, "library/web", "1.0", layers=(50_000,))
    tool = push_image(registry, "team/tool", "2", kind="docker-list", seed=1)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    config = ecr_standin.config(rules=[{"source": registry.host, "target": "up"}])
    (mirror / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (mirror / "required-images.txt").write_text(
        f"{registry.host}/library/web:1.0\n{registry.host}/team/tool:2\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    ecr_standin.blob_mounting = True
    assert main(["sync", "--ca-bundle", ecr_standin.ca_bundle]) == 0
    assert get_manifest_digest(ecr_standin.registry, "up/library/web", "1.0") == web.digest  # type: ignore[arg-type]
    assert get_manifest_digest(ecr_standin.registry, "up/team/tool", "2") == tool.digest  # type: ignore[arg-type]
    assert ecr_standin.count(api="PutImage", status=201) >= 2
