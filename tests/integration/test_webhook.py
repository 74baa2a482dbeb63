"""The admission webhook as the API server sees it: ``python -m bot webhook`` serving real HTTPS.

Each test sends AdmissionReview v1 requests over TLS (verified against a CA made here) and checks the
response: the echoed uid, ``allowed``, and the exact JSONPatch, applied to the pod to see what runs.
"""

from __future__ import annotations

import base64
import copy
import datetime
import gzip
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
MIRRORED = f"""nginx:1.25.3@{DIGEST_A}
quay.io/calico/node:v3.27.0@sha256:{"c" * 64}
registry.k8s.io/pause:3.9@sha256:{"d" * 64}
busybox:1.36@sha256:{"e" * 64}
"""
OWN_NAMESPACE = "image-mirror"


def make_certificate(directory: Path, name: str = "webhook") -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; returns the CA file for clients."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "image-mirror-webhook.image-mirror.svc")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # Written to temporary names first, then renamed, so a running webhook never sees half a pair.
    for filename, data in (
        (
            "tls.key",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
        ("tls.crt", cert.public_bytes(serialization.Encoding.PEM)),
    ):
        (directory / f".{filename}.tmp").write_bytes(data)
        (directory / f".{filename}.tmp").replace(directory / filename)
    ca_file = directory / f"{name}-ca.crt"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca_file


@dataclass
class Webhook:
    process: subprocess.Popen[str]
    port: int
    ca_file: Path
    directory: Path
    logs: list[dict[str, Any]] = field(default_factory=list)
    reader: threading.Thread | None = None

    def connection(self, ca_file: Path | None = None) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(ca_file or self.ca_file))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)

    def post(self, review: Any, connection: http.client.HTTPSConnection | None = None) -> tuple[int, Any]:
        own = connection is None
        conn = connection or self.connection()
        try:
            body = review if isinstance(review, bytes) else json.dumps(review).encode()
            conn.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data)
        finally:
            if own:
                conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        conn = self.connection()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_for_log(self, msg: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in list(self.logs):
                if record.get("msg") == msg and all(record.get(k) == v for k, v in fields.items()):
                    return record
            time.sleep(0.02)
        raise AssertionError(f"no log {msg!r} {fields} in {self.logs[-5:]}")


def start_webhook(
    directory: Path, *extra: str, config: str | None = None, mirrored: str = "mirrored-images.txt"
) -> Webhook:
    ca_file = make_certificate(directory)
    if mirrored.endswith(".gz"):
        (directory / mirrored).write_bytes(gzip.compress(MIRRORED.encode()))
    else:
        (directory / mirrored).write_text(MIRRORED)
    config_file = directory / "config.yml"
    config_file.write_text(config if config is not None else f"target: {{registry: {REGISTRY}}}\n")
    command = [
        sys.executable,
        "-m",
        "bot",
        "webhook",
        "--cert",
        str(directory / "tls.crt"),
        "--key",
        str(directory / "tls.key"),
        "--mirrored",
        str(directory / mirrored),
        "--config",
        str(config_file),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--reload-interval",
        "0.1",
        *extra,
    ]
    env = {**os.environ, "POD_NAMESPACE": OWN_NAMESPACE}
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    webhook = Webhook(process, 0, ca_file, directory)
    ready = threading.Event()

    def read_logs() -> None:
        assert process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {"msg": "raw", "line": line}
                webhook.logs.append(record)
                if record.get("msg") == "listening":
                    webhook.port = int(record["port"])
                    ready.set()
        ready.set()

    webhook.reader = threading.Thread(target=read_logs, daemon=True)
    webhook.reader.start()
    if not ready.wait(20) or webhook.port == 0:
        process.kill()
        process.wait(10)
        webhook.reader.join(10)
        raise AssertionError(f"the webhook did not start: {webhook.logs}")
    return webhook


def stop_webhook(webhook: Webhook) -> int:
    webhook.process.send_signal(signal.SIGTERM)
    try:
        return webhook.process.wait(10)
    finally:
        if webhook.process.poll() is None:
            webhook.process.kill()
            webhook.process.wait(10)
        if webhook.reader is not None:
            webhook.reader.join(10)


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    server = start_webhook(tmp_path_factory.mktemp("webhook"))
    yield server
    assert stop_webhook(server) == 0


@pytest.fixture
def own_webhook(tmp_path: Path) -> Iterator[Webhook]:
    server = start_webhook(tmp_path)
    yield server
    stop_webhook(server)


# --- AdmissionReview fixtures, shaped as the API server sends them -------------------------------------


def pod(
    containers: list[str],
    *,
    init: Sequence[str] = (),
    ephemeral: Sequence[str] = (),
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    def listed(prefix: str, images: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {"name": f"{prefix}{index}", "image": image, "imagePullPolicy": "IfNotPresent", "resources": {}}
            for index, image in enumerate(images)
        ]

    spec: dict[str, Any] = {
        "containers": listed("app", containers),
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
    }
    if init:
        spec["initContainers"] = listed("init", init)
    if ephemeral:
        spec["ephemeralContainers"] = [
            {**item, "targetContainerName": "app0"} for item in listed("debugger", ephemeral)
        ]
    metadata: dict[str, Any] = {
        "generateName": "web-7d9c6b5f4-",
        "namespace": "shop",
        "labels": {"app": "web", "pod-template-hash": "7d9c6b5f4", **(labels or {})},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d9c6b5f4",
                "uid": str(uuid.uuid4()),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def review(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    namespace: str = "shop",
    old: dict[str, Any] | None = None,
    sub_resource: str | None = None,
    resource: str = "pods",
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": resource},
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "groups": ["system:serviceaccounts"],
        },
        "object": obj,
        "oldObject": old,
        "dryRun": False,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def decoded_patch(answer: dict[str, Any]) -> list[dict[str, Any]]:
    response = answer["response"]
    if "patch" not in response:
        assert "patchType" not in response
        return []
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch


def apply_patch(obj: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 ``replace``, the only operation the webhook emits (anything else fails the test)."""
    result = copy.deepcopy(obj)
    for operation in patch:
        assert operation["op"] == "replace", operation
        *parents, last = operation["path"].lstrip("/").split("/")
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        node[key]  # replace requires the target to exist
        node[key] = operation["value"]
    return result


def images(obj: dict[str, Any], list_name: str = "containers") -> list[str]:
    return [container["image"] for container in obj["spec"].get(list_name, [])]


def admit(webhook: Webhook, request: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    status, answer = webhook.post(request)
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == request["request"]["uid"]
    assert answer["response"]["allowed"] is True
    return answer, decoded_patch(answer)


# --- the tests ---------------------------------------------------------------------------------------------


def test_deployment_pod_gets_mirrored_images_only(webhook: Webhook) -> None:
    obj = pod(["nginx:1.25.3", "redis:7.2", "quay.io/calico/node:v3.27.0"], init=["busybox:1.36"])
    request = review(obj)
    answer, patch = admit(webhook, request)
    assert patch == [
        {"op": "replace", "path": "/spec/initContainers/0/image", "value": f"{REGISTRY}/dockerhub/busybox:1.36"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"{REGISTRY}/dockerhub/nginx:1.25.3"},
        {"op": "replace", "path": "/spec/containers/2/image", "value": f"{REGISTRY}/quay/calico/node:v3.27.0"},
    ]
    patched = apply_patch(obj, patch)
    assert images(patched) == [
        f"{REGISTRY}/dockerhub/nginx:1.25.3",
        "redis:7.2",  # not mirrored: rewriting it would make the pod fail to pull
        f"{REGISTRY}/quay/calico/node:v3.27.0",
    ]
    # kubectl shows these to whoever created the pod
    assert answer["response"]["warnings"] == ["image redis:7.2 is not mirrored; pulled from its own registry"]
    record = webhook.wait_for_log("admission", uid=request["request"]["uid"])
    assert record["namespace"] == "shop" and record["operation"] == "CREATE"
    assert record["kept"] == ["redis:7.2: not in mirrored-images.txt; request it in mirror/required-images.txt"]
    assert len(record["rewritten"]) == 3 and isinstance(record["ms"], float)


def test_digest_pins_are_rewritten_only_when_the_mirror_holds_that_digest(webhook: Webhook) -> None:
    obj = pod(
        [
            f"nginx@{DIGEST_A}",
            f"nginx:1.25.3@{DIGEST_A}",
            f"nginx:1.25.3@{DIGEST_B}",
            f"docker.io/library/nginx@{DIGEST_B}",
        ]
    )
    _, patch = admit(webhook, review(obj))
    assert images(apply_patch(obj, patch)) == [
        f"{REGISTRY}/dockerhub/nginx@{DIGEST_A}",
        f"{REGISTRY}/dockerhub/nginx:1.25.3@{DIGEST_A}",
        f"nginx:1.25.3@{DIGEST_B}",
        f"docker.io/library/nginx@{DIGEST_B}",
    ]


def test_ephemeral_container_added_by_update_is_rewritten_and_nothing_else(webhook: Webhook) -> None:
    old = pod(["nginx:1.25.3", "redis:7.2"])
    new = pod(["nginx:1.25.3", "redis:7.2"], ephemeral=["busybox:1.36"])
    _, patch = admit(webhook, review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers"))
    # Containers the update did not touch keep their image, even a mirrored one: changing it restarts them.
    assert patch == [
        {"op": "replace", "path": "/spec/ephemeralContainers/0/image", "value": f"{REGISTRY}/dockerhub/busybox:1.36"}
    ]


def test_update_that_changes_an_image_is_rewritten(webhook: Webhook) -> None:
    old = pod(["nginx:1.24", "redis:7.2"])
    new = pod(["nginx:1.25.3", "redis:7.2"])
    _, patch = admit(webhook, review(new, operation="UPDATE", old=old))
    assert patch == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"{REGISTRY}/dockerhub/nginx:1.25.3"}
    ]


def test_warnings_stay_short_and_few(webhook: Webhook) -> None:
    long_name = "quay.io/" + "/".join(["component"] * 12) + ":v1"
    answer, _ = admit(webhook, review(pod([long_name, "redis:1", "redis:2", "redis:3", "redis:4"])))
    warnings = answer["response"]["warnings"]
    assert len(warnings) == 4 and warnings[-1] == "2 more images are not mirrored"
    assert all(len(warning) <= 120 for warning in warnings)
    assert warnings[0].startswith("image quay.io/component/") and warnings[0].endswith("pulled from its own registry")


def test_images_already_in_the_mirror_get_no_patch(webhook: Webhook) -> None:
    obj = pod([f"{REGISTRY}/dockerhub/nginx:1.25.3"], init=[f"{REGISTRY}/gcr/google_containers/pause:3.9"])
    answer, patch = admit(webhook, review(obj))
    assert patch == []
    assert set(answer["response"]) == {"uid", "allowed"}


@pytest.mark.parametrize("namespace", ["kube-system", OWN_NAMESPACE])
def test_excluded_namespaces_are_left_alone(webhook: Webhook, namespace: str) -> None:
    _, patch = admit(webhook, review(pod(["nginx:1.25.3"]), namespace=namespace))
    assert patch == []


@pytest.mark.parametrize(
    ("labels", "annotations"),
    [({"image-mirror-bot/rewrite": "false"}, None), (None, {"image-mirror-bot/rewrite": "False"})],
)
def test_pods_opt_out_by_label_or_annotation(
    webhook: Webhook, labels: dict[str, str] | None, annotations: dict[str, str] | None
) -> None:
    _, patch = admit(webhook, review(pod(["nginx:1.25.3"], labels=labels, annotations=annotations)))
    assert patch == []
    _, patch = admit(webhook, review(pod(["nginx:1.25.3"], labels={"image-mirror-bot/rewrite": "true"})))
    assert len(patch) == 1


def test_other_resources_and_operations_pass_through(webhook: Webhook) -> None:
    _, patch = admit(webhook, review(pod(["nginx:1.25.3"]), resource="deployments"))
    assert patch == []
    _, patch = admit(webhook, review(pod(["nginx:1.25.3"]), operation="DELETE"))
    assert patch == []


def test_one_connection_serves_many_reviews(webhook: Webhook) -> None:
    connection = webhook.connection()
    try:
        for _ in range(5):
            request = review(pod(["nginx:1.25.3"]))
            status, answer = webhook.post(request, connection)
            assert status == 200 and answer["response"]["uid"] == request["request"]["uid"]
            assert len(decoded_patch(answer)) == 1
    finally:
        connection.close()


def test_health_and_readiness(webhook: Webhook) -> None:
    assert webhook.get("/healthz") == (200, b"ok\n")
    assert webhook.get("/readyz") == (200, b"ready\n")
    assert webhook.get("/nothing")[0] == 404


def test_malformed_reviews_are_refused_with_400(webhook: Webhook) -> None:
    assert webhook.post(b"{not json")[0] == 400
    assert webhook.post(b"[" * 200_000 + b"]" * 200_000)[0] == 400  # nesting bomb
    status, answer = webhook.post(
        {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "x"}}
    )
    assert status == 400 and "admissionReviewVersions" in answer["error"]
    assert webhook.post({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}})[0] == 400


def _raw_exchange(webhook: Webhook, head: bytes) -> bytes:
    context = ssl.create_default_context(cafile=str(webhook.ca_file))
    with (
        socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(head)
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_request_size_is_bounded(webhook: Webhook) -> None:
    # The body is never sent: the length alone is refused, and the connection closed.
    answer = _raw_exchange(webhook, b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ")
    answer = _raw_exchange(webhook, b"POST /mutate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411 ")


def test_silent_client_is_dropped_after_the_timeout(tmp_path: Path) -> None:
    server = start_webhook(tmp_path, "--timeout", "0.5")
    try:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            assert raw.recv(1) == b""  # no TLS handshake from us: the server hangs up
        assert time.monotonic() - started < 5
        assert server.get("/healthz")[0] == 200
    finally:
        stop_webhook(server)


def test_connections_past_the_limit_are_closed(tmp_path: Path) -> None:
    server = start_webhook(tmp_path, "--max-connections", "2")
    context = ssl.create_default_context(cafile=str(server.ca_file))
    held = []
    try:
        for _ in range(2):  # two idle, kept-alive connections take both slots
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            held.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            server.get("/healthz")
        server.wait_for_log("too many connections; closing a new one")
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the slot frees once the server notices the close
            try:
                assert server.get("/healthz")[0] == 200
                break
            except (ssl.SSLError, ConnectionError):
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        for connection in held:
            connection.close()
        stop_webhook(server)


def test_mirrored_list_and_config_are_reloaded(own_webhook: Webhook) -> None:
    obj = pod(["redis:7.2"])
    assert admit(own_webhook, review(obj))[1] == []
    mirrored = own_webhook.directory / "mirrored-images.txt"
    mirrored.write_text(MIRRORED + f"redis:7.2@sha256:{'f' * 64}\n")
    own_webhook.wait_for_log("reloaded", what="settings")
    assert images(apply_patch(obj, admit(own_webhook, review(obj))[1])) == [f"{REGISTRY}/dockerhub/redis:7.2"]

    # mode: mappable rewrites what any rule covers; a broken config keeps the last good settings.
    own_webhook.logs.clear()
    (own_webhook.directory / "config.yml").write_text(
        f"target: {{registry: {REGISTRY}}}\nwebhook: {{mode: mappable}}\n"
    )
    own_webhook.wait_for_log("reloaded", what="settings")
    assert len(admit(own_webhook, review(pod(["alpine:3.19"])))[1]) == 1
    (own_webhook.directory / "config.yml").write_text("webhook: {mode: everything}\n")
    failure = own_webhook.wait_for_log("reload failed; still serving the previous version")
    assert "webhook.mode" in failure["error"]
    assert len(admit(own_webhook, review(pod(["alpine:3.19"])))[1]) == 1


def test_renewed_certificate_is_served_without_restart(own_webhook: Webhook) -> None:
    assert own_webhook.get("/healthz")[0] == 200
    new_ca = make_certificate(own_webhook.directory, "renewed")
    own_webhook.wait_for_log("reloaded", what="certificate")
    with pytest.raises(ssl.SSLCertVerificationError):
        own_webhook.get("/healthz")  # the old CA no longer verifies the served certificate
    connection = own_webhook.connection(new_ca)
    try:
        status, answer = own_webhook.post(review(pod(["nginx:1.25.3"])), connection)
    finally:
        connection.close()
    assert status == 200 and len(decoded_patch(answer)) == 1


def test_start_up_fails_clearly_without_the_certificate(tmp_path: Path) -> None:
    (tmp_path / "mirrored-images.txt").write_text(MIRRORED)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "webhook",
            "--cert",
            str(tmp_path / "missing.crt"),
            "--key",
            str(tmp_path / "missing.key"),
            "--mirrored",
            str(tmp_path / "mirrored-images.txt"),
            "--port",
            "0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "missing.crt: certificate file not found" in result.stderr


def test_gzip_mirrored_list(tmp_path: Path) -> None:
    # The real mirrored list is over 2 MB; gzip makes it fit a ConfigMap (1 MiB).
    server = start_webhook(tmp_path, mirrored="mirrored-images.txt.gz")
    try:
        _, patch = admit(server, review(pod(["nginx:1.25.3", "redis:7.2"])))
        assert [op["path"] for op in patch] == ["/spec/containers/0/image"]
    finally:
        assert stop_webhook(server) == 0


def test_deploy_manifests_are_safe_and_match_the_cli() -> None:

    import yaml

    from bot.cli import build_parser

    webhook_dir = REPO / "webhook"
    (configuration,) = yaml.safe_load_all((webhook_dir / "mutatingwebhookconfiguration.yaml").read_text())
    (hook,) = configuration["webhooks"]
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"
    (rule,) = hook["rules"]
    assert rule["resources"] == ["pods", "pods/ephemeralcontainers"] and rule["operations"] == ["CREATE", "UPDATE"]
    excluded = hook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["key"] == "kubernetes.io/metadata.name" and excluded["operator"] == "NotIn"
    deployment, _ = yaml.safe_load_all((webhook_dir / "deployment.yaml").read_text())
    namespace = deployment["metadata"]["namespace"]
    assert set(excluded["values"]) == {"kube-system", namespace}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])  # the flags exist and parse
    assert args.command == "webhook" and args.port == 8443
    assert container["env"][0]["name"] == "POD_NAMESPACE"
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {str(args.cert.parent), str(args.mirrored.parent)} <= mounts
    dockerfile = (webhook_dir / "Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert build_parser().parse_args(json.loads(cmd[4:])).command == "webhook"
    assert (webhook_dir / "gen-certs.sh").stat().st_mode & 0o111


def test_a_busy_port_is_a_clear_error(webhook: Webhook, tmp_path: Path) -> None:
    make_certificate(tmp_path)
    (tmp_path / "mirrored-images.txt").write_text(MIRRORED)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "webhook", "--cert", str(tmp_path / "tls.crt"), "--key",
         str(tmp_path / "tls.key"), "--mirrored", str(tmp_path / "mirrored-images.txt"),
         "--host", "127.0.0.1", "--port", str(webhook.port)],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{webhook.port}" in result.stderr
