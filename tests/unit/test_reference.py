from __future__ import annotations

import pytest

from bot.errors import InvalidReference
from bot.reference import Reference, is_digest, parse_reference

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "path", "tag", "digest"),
    [
        ("nginx", None, "nginx", None, None),
        ("nginx:1.17.9", None, "nginx", "1.17.9", None),
        ("library/nginx:1.17.9", None, "library/nginx", "1.17.9", None),
        ("docker.io/library/nginx", "docker.io", "library/nginx", None, None),
        ("gcr.io/heptio-images/velero:v1.1.0", "gcr.io", "heptio-images/velero", "v1.1.0", None),
        ("localhost:5000/team/app:dev", "localhost:5000", "team/app", "dev", None),
        ("localhost/app", "localhost", "app", None, None),
        ("127.0.0.1:5000/app:1", "127.0.0.1:5000", "app", "1", None),
        ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None),
        ("minio/minio:RELEASE.2019-08-07T01-59-21Z", None, "minio/minio", "RELEASE.2019-08-07T01-59-21Z", None),
        (f"nginx@{SHA}", None, "nginx", None, SHA),
        (f"quay.io/calico/node:v3.7.4@{SHA}", "quay.io", "calico/node", "v3.7.4", SHA),
        ("a__b/c-d/e.f/g--h_i:_x", None, "a__b/c-d/e.f/g--h_i", "_x", None),
        (
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.5.5",
            "602401143452.dkr.ecr.us-west-2.amazonaws.com",
            "amazon-k8s-cni",
            "v1.5.5",
            None,
        ),
        ("Registry.Example.COM/app", "Registry.Example.COM", "app", None, None),
    ],
)
def test_valid_references_keep_what_was_written(
    text: str, registry: str | None, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.path, ref.tag, ref.digest) == (registry, path, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("", 1, "empty"),
        ("Nginx:1.0", 1, "uppercase letter 'N'"),
        ("bitnami/Redis", 9, "uppercase letter 'R'"),
        ("nginx:1.0 #", 10, "whitespace"),
        ("name - jimmidyson/configmap-reload", 5, "whitespace"),
        ("nginx:\t1", 7, "whitespace"),
        ("ngi\x00nx", 4, "control character U+0000"),
        ("ngi\rnx", 4, "control character U+000D"),
        ("ngin\u0445:1", 5, "non-ASCII character '\u0445'"),  # Cyrillic ha, a homoglyph of x
        ("gcr.io/google_containers/metrics-server-amd64:v0.3.1#", 53, "'#' is not allowed in a tag"),
        ("gcr.io/google-containers/busybox#", 33, "'#' is not allowed in a repository name"),
        ("gcr.io//kubeflow/app:1", 8, "empty path component"),
        ("nginx/", 7, "empty path component"),
        ("nginx:", 6, "not followed by a tag"),
        ("nginx:" + "a" * 129, 135, "129 characters long; at most 128"),
        ("nginx:-x", 7, "must start with"),
        ("nginx@sha256:abc", 17, "truncated: 3 hex digits, it needs 64"),
        ("nginx@sha256:" + "A" * 64, 14, "uppercase hex digit"),
        ("nginx@sha256:" + "a" * 65, 78, "too long"),
        ("nginx@sha256", 7, "algorithm:hex"),
        ("nginx@" + SHA + "@" + SHA, 78, "more than one '@'"),
        ("linux/arm64", 1, "is a platform, not an image"),
        ("linux/arm/v7", 1, "is a platform"),
        ("https://quay.io/calico/node", 6, "a URL is not an image reference"),
        ("a" * 256, 256, "256 characters long; at most 255"),
        ("-nginx", 1, "must start with a lowercase letter or digit"),
        ("nginx-", 6, "must end with a lowercase letter or digit"),
        ("ngi..nx", 4, "separator '..' is not allowed"),
        ("bad_host.io:99999/app", 4, "host name component 'bad_host'"),
        ("quay.io:abc/app", 9, "'abc' is not a port number"),
        ("quay.io/", 9, "repository path after the registry host is missing"),
        (":tag", 1, "repository name is missing"),
    ],
)
def test_invalid_references_name_the_column_and_the_fix(text: str, column: int, reason: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert caught.value.column == column, caught.value.message
    assert reason in caught.value.reason
    assert caught.value.text == text


def test_docker_hub_spellings_share_one_identity() -> None:
    spellings = [
        "nginx",
        "nginx:latest",
        "library/nginx",
        "docker.io/nginx",
        "docker.io/library/nginx:latest",
        "index.docker.io/library/nginx",
        "registry-1.docker.io/library/nginx:latest",
    ]
    identities = {parse_reference(text).identity() for text in spellings}
    assert identities == {("docker.io", "library/nginx", "latest", None)}
    assert parse_reference("nginx").canonical() == "docker.io/library/nginx:latest"


def test_distinct_images_have_distinct_identities() -> None:
    texts = ["nginx:1", "nginx:2", "bitnami/nginx:1", "quay.io/nginx:1", f"nginx@{SHA}", f"nginx:1@{SHA}"]
    assert len({parse_reference(text).identity() for text in texts}) == len(texts)


def test_repository_is_the_api_name() -> None:
    assert parse_reference("nginx").repository == "library/nginx"
    assert parse_reference("bitnami/nginx").repository == "bitnami/nginx"
    assert parse_reference("quay.io/nginx").repository == "nginx"
    assert parse_reference("Docker.IO/nginx").host == "docker.io"


def test_effective_tag() -> None:
    assert parse_reference("nginx").effective_tag == "latest"
    assert parse_reference(f"nginx@{SHA}").effective_tag is None
    assert parse_reference(f"nginx:1@{SHA}").effective_tag == "1"


def test_with_tag_and_digest_return_new_references() -> None:
    ref = parse_reference("quay.io/calico/node:v1")
    assert str(ref.with_digest(SHA)) == f"quay.io/calico/node:v1@{SHA}"
    assert str(ref.with_tag("v2")) == "quay.io/calico/node:v2"
    assert ref == Reference("quay.io", "calico/node", "v1")


def test_is_digest() -> None:
    assert is_digest(SHA)
    assert not is_digest("sha256:abc")
    assert not is_digest("latest")
