"""``kustomize``: an images: block that kustomize applies to the same result as ``rewrite``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.config import DEFAULT_TARGET_REGISTRY
from bot.reference import parse_reference
from tests.harness.rewrite_policy import MIRRORED

R = DEFAULT_TARGET_REGISTRY


def apply_images(image: str, entries: list[dict[str, str]]) -> str:
    """What kustomize's image transformer does to one image: match on the name, swap name, tag or digest."""
    ref = parse_reference(image)
    for entry in entries:
        if entry["name"] != ref.name:
            continue
        name = entry.get("newName", ref.name)
        if "digest" in entry:
            return f"{name}@{entry['digest']}"
        if "newTag" in entry:
            return f"{name}:{entry['newTag']}"
        suffix = (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")
        return name + suffix
    return image


def pod(*images: str) -> str:
    containers = "".join(f"  - name: c{i}\n    image: {image}\n" for i, image in enumerate(images))
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n{containers}"


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *extra: str) -> tuple[int, str, str]:
    (tmp_path / "mirrored-images.txt").write_text(MIRRORED)
    (tmp_path / "pod.yaml").write_text(text)
    status = main(
        ["kustomize", str(tmp_path / "pod.yaml"), "--mirrored", str(tmp_path / "mirrored-images.txt"), *extra]
    )
    out, err = capsys.readouterr()
    return status, out, err


def rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["rewrite", str(tmp_path / "pod.yaml"), "--mirrored", str(tmp_path / "mirrored-images.txt")]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    return [c["image"] for c in doc["spec"]["containers"]]


def test_block_is_valid_kustomize_and_agrees_with_rewrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = pod("nginx:1.25.3", "registry.k8s.io/pause:3.9", "redis:7", "busybox:1.36")
    status, out, err = run(tmp_path, capsys, text)
    assert status == 0
    block = yaml.safe_load(out)
    assert block == {
        "images": [
            {"name": "busybox", "newName": f"{R}/dockerhub/busybox", "newTag": "1.36"},
            {"name": "nginx", "newName": f"{R}/dockerhub/nginx", "newTag": "1.25.3"},
            {"name": "registry.k8s.io/pause", "newName": f"{R}/gcr/google_containers/pause", "newTag": "3.9"},
        ]
    }
    assert "redis:7 kept (not mirrored)" in err
    images = [c["image"] for c in yaml.safe_load(text)["spec"]["containers"]]
    assert [apply_images(image, block["images"]) for image in images] == rewritten(tmp_path, capsys)


def test_a_name_with_an_unmirrored_tag_gets_no_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(tmp_path, capsys, pod("nginx:1.25.3", "nginx:1.24", "busybox:1.36"))
    assert status == 0
    assert [entry["name"] for entry in yaml.safe_load(out)["images"]] == ["busybox"]
    assert "nginx: no entry, because kustomize matches by name and some tags of it are not mirrored" in err


def test_several_mirrored_tags_keep_their_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = pod("nginx:1.25.3", f"nginx@sha256:{'1' * 64}")
    status, out, _ = run(tmp_path, capsys, text)
    assert status == 0
    block = yaml.safe_load(out)
    assert block["images"] == [{"name": "nginx", "newName": f"{R}/dockerhub/nginx"}]
    assert "# tags kept as written" in out
    images = [c["image"] for c in yaml.safe_load(text)["spec"]["containers"]]
    assert [apply_images(image, block["images"]) for image in images] == rewritten(tmp_path, capsys)


def test_digests_are_kept_or_pinned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digest = "sha256:" + "6" * 64  # busybox:1.36 in the mirrored list
    _, out, _ = run(tmp_path, capsys, pod("busybox:1.36"), "--pin-digest")
    assert yaml.safe_load(out)["images"] == [{"name": "busybox", "newName": f"{R}/dockerhub/busybox", "digest": digest}]
    _, out, _ = run(tmp_path, capsys, pod(f"busybox@{digest}"))
    assert yaml.safe_load(out)["images"] == [{"name": "busybox", "newName": f"{R}/dockerhub/busybox", "digest": digest}]


def test_nothing_to_point_at_the_mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(tmp_path, capsys, pod("redis:7"))
    assert (status, out) == (0, "")
    assert "nothing to add to images:" in err


def test_pin_digest_needs_the_mirrored_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(tmp_path, capsys, pod("redis:7"), "--pin-digest", "--all-mappable")
    assert status == 2 and "--pin-digest" in err
