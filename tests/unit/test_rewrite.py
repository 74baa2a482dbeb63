"""``rewrite``: which images change, in which fields, and what the command prints and writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.config import DEFAULT_TARGET_REGISTRY, Config
from bot.lists import MirroredIndex
from bot.rewrite.files import rewrite_text
from bot.rewrite.policy import Mode, Policy, Status, decide
from bot.rewrite.sites import FileKind
from bot.rules import Mapper
from tests.harness.rewrite_policy import DIGEST, MIRRORED, policy

R = DEFAULT_TARGET_REGISTRY
OTHER = "sha256:" + "2" * 64


def images_after(text: str, path: str = "x.yaml", mode: Mode = Mode.MIRRORED) -> list[str]:
    """Every image field of the rewritten file, in document order, read back with a plain YAML loader."""
    result = rewrite_text(text, path, policy(mode))
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for doc in yaml.safe_load_all(result.new_text):
        walk(doc)
    return found


# --- the decision for one image ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "status", "target"),
    [
        ("nginx:1.25.3", Status.REWRITE, f"{R}/dockerhub/nginx:1.25.3"),
        # listed as nginx:1.25.3, so the copy is at dockerhub/nginx, whatever the manifest's spelling
        ("docker.io/library/nginx:1.25.3", Status.REWRITE, f"{R}/dockerhub/nginx:1.25.3"),
        (f"nginx@{DIGEST}", Status.REWRITE, f"{R}/dockerhub/nginx@{DIGEST}"),
        (f"nginx:1.25.3@{DIGEST}", Status.REWRITE, f"{R}/dockerhub/nginx:1.25.3@{DIGEST}"),
        # the tag was mirrored twice: the second digest is found through the digest index
        (f"nginx:1.25.3@sha256:{'3' * 64}", Status.REWRITE, f"{R}/dockerhub/nginx:1.25.3@sha256:{'3' * 64}"),
        (f"nginx:1.25.3@{OTHER}", Status.NOT_MIRRORED, f"{R}/dockerhub/nginx:1.25.3@{OTHER}"),
        (f"nginx@{OTHER}", Status.NOT_MIRRORED, f"{R}/dockerhub/nginx@{OTHER}"),
        ("nginx:1.24", Status.NOT_MIRRORED, f"{R}/dockerhub/nginx:1.24"),
        ("nginx", Status.NOT_MIRRORED, f"{R}/dockerhub/nginx:latest"),
        ("k8s.gcr.io/pause:3.9", Status.NOT_MIRRORED, f"{R}/gcr/google_containers/pause:3.9"),
        ("registry.k8s.io/pause:3.9", Status.REWRITE, f"{R}/gcr/google_containers/pause:3.9"),
        (f"{R}/dockerhub/nginx:1.25.3", Status.IN_MIRROR, None),
        ("example.com/team/app:1", Status.UNMAPPED, None),
        ("Nginx:1", Status.INVALID, None),
        ("${IMAGE}", Status.UNRESOLVED, None),
        ("{{ .Values.image }}", Status.UNRESOLVED, None),
    ],
)
def test_decision_for_one_image(image: str, status: Status, target: str | None) -> None:
    p = policy()
    decision = decide(image, p.mapper, p.index, Mode.MIRRORED)
    assert decision.status is status, decision.reason
    assert decision.target == target
    assert decision.rewrites == (status is Status.REWRITE)
    if status is not Status.REWRITE:
        assert decision.reason


def test_reasons_say_what_to_do() -> None:
    p = policy()
    assert "request it in mirror/required-images.txt" in p.decide("redis:7").reason
    assert "another digest" in p.decide(f"nginx:1.25.3@{OTHER}").reason
    assert "example.com is not allowed" in p.decide("example.com/app:1").reason
    assert "uppercase" in p.decide("Nginx:1").reason


def test_all_mappable_rewrites_unmirrored_images_but_never_unmapped_ones() -> None:
    p = policy(Mode.MAPPABLE, mirrored="")
    assert p.decide("redis:7").target == f"{R}/dockerhub/redis:7"
    assert p.decide("example.com/app:1").status is Status.UNMAPPED
    assert p.decide(f"{R}/dockerhub/redis:7").status is Status.IN_MIRROR


@pytest.mark.parametrize("mode", [Mode.MIRRORED, Mode.MAPPABLE])
def test_a_mirrored_image_is_pointed_at_the_path_it_was_copied_to(mode: Mode) -> None:
    # The rule keeps the path as written, so the spellings map to different repositories; only the listed
    # spelling's repository holds the copy (anything else would be ImagePullBackOff).
    listed = policy(mode, mirrored=f"docker.io/library/busybox:1.36@{DIGEST}\nnginx:1.25.3@{DIGEST}\n")
    assert listed.decide("busybox:1.36").target == f"{R}/dockerhub/library/busybox:1.36"
    assert listed.decide(f"index.docker.io/library/nginx@{DIGEST}").target == f"{R}/dockerhub/nginx@{DIGEST}"
    assert listed.decide("docker.io/nginx:1.25.3").target == f"{R}/dockerhub/nginx:1.25.3"


def test_decisions_are_cached_and_the_cache_is_bounded() -> None:
    p = Policy(Mapper(Config()), MirroredIndex(()), Mode.MAPPABLE, cache_size=2)
    first = p.decide("redis:7")
    assert p.decide("redis:7") is first
    p.decide("redis:6")
    p.decide("redis:5")  # the cache was full: it starts over
    assert p.decide("redis:7") is not first and p.decide("redis:7") == first


# --- Kubernetes --------------------------------------------------------------------------------------------

POD_SPEC = """\
      initContainers:
      - name: init
        image: busybox:1.36
      containers:
      - name: app
        image: nginx:1.25.3
      - name: other
        image: redis:7
      ephemeralContainers:
      - name: debug
        image: busybox:1.36
"""


@pytest.mark.parametrize(
    ("kind", "head"),
    [
        ("Deployment", "spec:\n  template:\n    spec:\n"),
        ("StatefulSet", "spec:\n  template:\n    spec:\n"),
        ("DaemonSet", "spec:\n  template:\n    spec:\n"),
        ("ReplicaSet", "spec:\n  template:\n    spec:\n"),
        ("Job", "spec:\n  template:\n    spec:\n"),
    ],
)
def test_every_workload_kind(kind: str, head: str) -> None:
    text = f"apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: x}}\n{head}{POD_SPEC}"
    assert images_after(text) == [
        f"{R}/dockerhub/busybox:1.36",
        f"{R}/dockerhub/nginx:1.25.3",
        "redis:7",
        f"{R}/dockerhub/busybox:1.36",
    ]


def test_pod_cronjob_list_and_several_documents() -> None:
    indented = "".join(line[4:] + "\n" for line in POD_SPEC.splitlines())
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n" + indented + "---\n"
        "apiVersion: batch/v1\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
        "          containers:\n          - {name: c, image: 'registry.k8s.io/pause:3.9'}\n"
        "---\n"
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: apps/v1\n  kind: Deployment\n  spec:\n    template:\n      spec:\n"
        "        containers: [{name: a, image: quay.io/calico/node:v3.27.0}]\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  data: {image: nginx:1.25.3}\n"  # not a workload: untouched
    )
    result = rewrite_text(text, "all.yaml", policy())
    assert result.kind is FileKind.KUBERNETES
    docs = list(yaml.safe_load_all(result.new_text))
    assert [c["image"] for c in docs[0]["spec"]["containers"]] == [f"{R}/dockerhub/nginx:1.25.3", "redis:7"]
    assert docs[0]["spec"]["ephemeralContainers"][0]["image"] == f"{R}/dockerhub/busybox:1.36"
    cron = docs[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert cron["image"] == f"{R}/gcr/google_containers/pause:3.9"
    assert docs[2]["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"] == f"{R}/quay/calico/node:v3.27.0"
    assert docs[2]["items"][1]["data"]["image"] == "nginx:1.25.3"
    assert [(f.line, f.col, f.decision.status) for f in result.findings] == [
        (7, 12, Status.REWRITE),
        (10, 12, Status.REWRITE),
        (12, 12, Status.NOT_MIRRORED),
        (15, 12, Status.REWRITE),
        (25, 30, Status.REWRITE),
        (35, 39, Status.REWRITE),
    ]


# --- Helm values, compose, ECS -----------------------------------------------------------------------------


def test_helm_image_maps_and_strings() -> None:
    text = """\
image:
  registry: docker.io
  repository: bitnami/redis
  tag: 7.2.4
  digest: ""
plain:
  image: busybox:1.36
helper:
  initImage: registry.k8s.io/pause:3.9
map:
  image: {repository: nginx, tag: 1.25.3}
untagged:
  image:
    repository: nginx
unmirrored:
  image: {registry: quay.io, repository: foo/bar, tag: "1"}
imagePullPolicy: Always
"""
    result = rewrite_text(text, "values.yaml", policy())
    assert result.kind is FileKind.HELM
    values = yaml.safe_load(result.new_text)
    assert values["image"] == {"registry": R, "repository": "dockerhub/bitnami/redis", "tag": "7.2.4", "digest": ""}
    assert values["plain"]["image"] == f"{R}/dockerhub/busybox:1.36"
    assert values["helper"]["initImage"] == f"{R}/gcr/google_containers/pause:3.9"
    assert values["map"]["image"] == {"repository": f"{R}/dockerhub/nginx", "tag": "1.25.3"}
    assert values["untagged"]["image"] == {"repository": "nginx"}
    assert values["unmirrored"]["image"]["registry"] == "quay.io"
    reasons = {f.decision.image: f.decision.status for f in result.findings}
    assert reasons["nginx"] is Status.UNRESOLVED
    assert reasons["quay.io/foo/bar:1"] is Status.NOT_MIRRORED


def test_compose_services() -> None:
    text = "services:\n  web:\n    image: nginx:1.25.3\n  app:\n    build: .\n  env:\n    image: ${IMG}\n"
    result = rewrite_text(text, "docker-compose.yml", policy())
    assert result.kind is FileKind.COMPOSE
    assert yaml.safe_load(result.new_text)["services"] == {
        "web": {"image": f"{R}/dockerhub/nginx:1.25.3"},
        "app": {"build": "."},
        "env": {"image": "${IMG}"},
    }


@pytest.mark.parametrize("wrapped", [False, True])
def test_ecs_task_definition(wrapped: bool) -> None:
    definition = {
        "family": "web",
        "containerDefinitions": [
            {"name": "web", "image": "nginx:1.25.3", "essential": True},
            {"name": "log", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.31.12"},
        ],
    }
    document = {"taskDefinition": definition} if wrapped else definition
    text = json.dumps(document, indent="\t") + "\n"
    result = rewrite_text(text, "task.json", policy())
    assert result.kind is FileKind.ECS
    rewritten = json.loads(result.new_text)
    definitions = (rewritten["taskDefinition"] if wrapped else rewritten)["containerDefinitions"]
    assert [d["image"] for d in definitions] == [
        f"{R}/dockerhub/nginx:1.25.3",
        "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.31.12",
    ]
    assert result.new_text == text.replace('"nginx:1.25.3"', f'"{R}/dockerhub/nginx:1.25.3"')


def test_type_option_overrides_the_guess() -> None:
    text = "services:\n  web:\n    image: nginx:1.25.3\n"
    assert rewrite_text(text, "x.yaml", policy(), FileKind.HELM).kind is FileKind.HELM


def test_errors_name_file_line_and_column() -> None:
    from bot.errors import RewriteError

    with pytest.raises(RewriteError, match=r"^bad\.yaml:4:2: not valid YAML"):
        rewrite_text("a: 1\nb:\n  - c\n d: [\n", "bad.yaml", policy())
    with pytest.raises(RewriteError, match=r"^bad\.json:1:\d+: not valid JSON"):
        rewrite_text('{"containerDefinitions": [}', "bad.json", policy())


# --- the command -------------------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "mirrored-images.txt").write_text(MIRRORED)
    (tmp_path / "deploy.yaml").write_text(
        "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: nginx:1.25.3 # web\n  - image: redis:7\n"
    )
    return tmp_path


def test_command_prints_the_result_and_the_report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["rewrite", str(workdir / "deploy.yaml"), "--mirrored", str(workdir / "mirrored-images.txt")])
    out, err = capsys.readouterr()
    assert status == 0
    assert out == (
        f"kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: {R}/dockerhub/nginx:1.25.3 # web\n"
        "  - image: redis:7\n"
    )
    assert f"deploy.yaml:5:12: nginx:1.25.3 -> {R}/dockerhub/nginx:1.25.3" in err
    assert "deploy.yaml:6:12: redis:7 kept (not mirrored): not in mirrored-images.txt" in err
    assert (workdir / "deploy.yaml").read_text().count("nginx:1.25.3 # web") == 1  # the file is untouched


def test_check_exits_1_when_something_would_change(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rewrite", "--check", str(workdir / "deploy.yaml"), "--mirrored", str(workdir / "mirrored-images.txt")]
    before = (workdir / "deploy.yaml").read_bytes()
    assert main(args) == 1
    assert capsys.readouterr().out == ""
    assert (workdir / "deploy.yaml").read_bytes() == before
    assert main(["rewrite", "--in-place", *args[2:]]) == 0
    assert main(args) == 0  # now clean: CI passes
    assert f"image: {R}/dockerhub/nginx:1.25.3 # web" in (workdir / "deploy.yaml").read_text()


def test_in_place_keeps_crlf_bom_and_permissions(workdir: Path) -> None:
    path = workdir / "deploy.yaml"
    path.write_bytes(
        b"\xef\xbb\xbfkind: Pod\r\napiVersion: v1\r\nspec:\r\n  containers:\r\n  - image: 'nginx:1.25.3'\r\n"
    )
    path.chmod(0o640)
    assert main(["rewrite", "--in-place", str(path), "--mirrored", str(workdir / "mirrored-images.txt")]) == 0
    assert path.read_bytes() == (
        b"\xef\xbb\xbfkind: Pod\r\napiVersion: v1\r\nspec:\r\n  containers:\r\n  - image: '"
        + f"{R}/dockerhub/nginx:1.25.3".encode()
        + b"'\r\n"
    )
    assert path.stat().st_mode & 0o777 == 0o640
    assert not list(workdir.glob(".*.tmp"))


def test_all_mappable_needs_no_mirrored_list(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deploy = str(workdir / "deploy.yaml")
    assert main(["rewrite", deploy, "--all-mappable", "--mirrored", str(workdir / "missing.txt")]) == 0
    assert f"image: {R}/dockerhub/redis:7" in capsys.readouterr().out
    assert main(["rewrite", deploy, "--mirrored", str(workdir / "missing.txt")]) == 2
    assert "--all-mappable" in capsys.readouterr().err


def test_registry_option_and_stdin(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("services:\n  web: {image: nginx:1.25.3}\n"))
    args = ["rewrite", "-", "--registry", "mirror.example.com/base", "--mirrored", str(workdir / "mirrored-images.txt")]
    assert main(args) == 0
    assert capsys.readouterr().out == "services:\n  web: {image: mirror.example.com/base/dockerhub/nginx:1.25.3}\n"


def test_unreadable_files_are_clear_errors(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "latin1.yaml").write_bytes(b"image: caf\xe9\n")
    mirrored = ["--mirrored", str(workdir / "mirrored-images.txt")]
    assert main(["rewrite", str(workdir / "latin1.yaml"), *mirrored]) == 1
    assert "latin1.yaml: byte 10 is not UTF-8" in capsys.readouterr().err
    assert main(["rewrite", str(workdir / "nope.yaml"), *mirrored]) == 1
    assert "nope.yaml: cannot read the file" in capsys.readouterr().err


def test_a_values_file_that_contains_itself_terminates() -> None:
    text = "root: &root\n  image: busybox:1.36\n  child: *root\nlist: &l [*l, {image: nginx:1.25.3}]\n"
    result = rewrite_text(text, "values.yaml", policy(), FileKind.HELM)
    assert [f.decision.image for f in result.findings] == ["busybox:1.36", "nginx:1.25.3"]
    assert result.new_text.count(R) == 2


def test_report_lines_cannot_inject_workflow_commands(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "evil.yaml").write_text('kind: Pod\nspec:\n  containers:\n  - image: "x\\n::add-mask::y"\n')
    assert main(["rewrite", str(workdir / "evil.yaml"), "--mirrored", str(workdir / "mirrored-images.txt")]) == 0
    err = capsys.readouterr().err
    assert "kept (invalid reference)" in err
    assert not any(line.startswith("::") for line in err.splitlines())
