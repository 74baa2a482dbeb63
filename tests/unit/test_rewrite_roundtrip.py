"""Round trips: a rewrite changes the image values and not one other byte of the file."""

from __future__ import annotations

import difflib

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import DEFAULT_TARGET_REGISTRY
from bot.rewrite.files import rewrite_text
from bot.rewrite.policy import Status
from tests.harness.rewrite_policy import policy

R = DEFAULT_TARGET_REGISTRY
NGINX = f"{R}/dockerhub/nginx:1.25.3"
BUSYBOX = f"{R}/dockerhub/busybox:1.36"


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old, new) for each changed line; fails when lines were added, removed or moved."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new), "".join(difflib.unified_diff(old, new))
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


AWKWARD = """\
%YAML 1.2
---   # a document marker with a comment
# A file that re-serialising would reflow: odd indents, flow maps, long lines, tags, anchors.
apiVersion:    apps/v1          # extra spaces stay
kind: Deployment
metadata: { name: web,  labels: {app: web} }
spec:
    replicas: 2
    template:
        spec:
            initContainers:
            -   name: init
                image: !!str busybox:1.36     # a tag property before the value
            containers:
            - name: web
              image: &web "nginx:1.25.3"   # anchored
              args: ["--a-very-long-argument-that-a-yaml-dumper-would-wrap-at-eighty-columns-if-it-reflowed-the-line"]
            - name: web-copy
              image: *web
            - name: cache
              image: 'redis:7'  # not mirrored
...
---
apiVersion: v1
kind: Pod
spec:
  containers: [ {name: a, image: nginx:1.25.3}, {name: b, image: "redis:7"} ]
  # trailing comment without final newline"""


def test_only_image_values_change_in_an_awkward_file() -> None:
    result = rewrite_text(AWKWARD, "awkward.yaml", policy())
    assert changed_lines(AWKWARD, result.new_text) == [
        (
            "                image: !!str busybox:1.36     # a tag property before the value\n",
            f"                image: !!str {BUSYBOX}     # a tag property before the value\n",
        ),
        (
            '              image: &web "nginx:1.25.3"   # anchored\n',
            f'              image: &web "{NGINX}"   # anchored\n',
        ),
        (
            '  containers: [ {name: a, image: nginx:1.25.3}, {name: b, image: "redis:7"} ]\n',
            f'  containers: [ {{name: a, image: {NGINX}}}, {{name: b, image: "redis:7"}} ]\n',
        ),
    ]
    assert not result.new_text.endswith("\n")
    first, second = yaml.safe_load_all(result.new_text)
    containers = first["spec"]["template"]["spec"]["containers"]
    # The alias follows its anchor: both containers now run the mirrored image.
    assert [c["image"] for c in containers] == [NGINX, NGINX, "redis:7"]
    assert [c["image"] for c in second["spec"]["containers"]] == [NGINX, "redis:7"]


def test_the_anchor_is_reported_once() -> None:
    result = rewrite_text(AWKWARD, "awkward.yaml", policy())
    assert [(f.line, f.decision.image, f.decision.status) for f in result.findings] == [
        (13, "busybox:1.36", Status.REWRITE),
        (16, "nginx:1.25.3", Status.REWRITE),
        (21, "redis:7", Status.NOT_MIRRORED),
        (27, "nginx:1.25.3", Status.REWRITE),
        (27, "redis:7", Status.NOT_MIRRORED),
    ]


def test_merge_keys_rewrite_the_shared_mapping() -> None:
    text = """\
x-defaults: &defaults
  image: busybox:1.36 # shared by both services
  restart: always
services:
  a:
    <<: *defaults
  b:
    <<: *defaults
    image: nginx:1.25.3
  c:
    <<: [*defaults]
    command: ["true"]
"""
    result = rewrite_text(text, "compose.yaml", policy())
    assert changed_lines(text, result.new_text) == [
        ("  image: busybox:1.36 # shared by both services\n", f"  image: {BUSYBOX} # shared by both services\n"),
        ("    image: nginx:1.25.3\n", f"    image: {NGINX}\n"),
    ]
    services = yaml.safe_load(result.new_text)["services"]
    assert [services[name]["image"] for name in "abc"] == [BUSYBOX, NGINX, BUSYBOX]


def test_values_that_cannot_be_edited_in_place_are_reported_not_mangled() -> None:
    text = """\
kind: Pod
apiVersion: v1
spec:
  containers:
  - image: >-
      nginx:1.25.3
  - image: "busybox\\x3a1.36"
  - image: "nginx:1.25.3"
"""
    result = rewrite_text(text, "pod.yaml", policy())
    assert changed_lines(text, result.new_text) == [('  - image: "nginx:1.25.3"\n', f'  - image: "{NGINX}"\n')]
    problems = [(f.line, f.problem) for f in result.findings if f.problem]
    assert problems == [
        (5, "written as a block scalar; edit this one by hand"),
        (7, "written with escapes or over several lines; edit this one by hand"),
    ]
    assert result.findings[0].describe("pod.yaml") == (
        "pod.yaml:5:12: nginx:1.25.3 kept (cannot edit in place): written as a block scalar; edit this one by hand"
    )


def test_a_file_without_images_is_returned_byte_for_byte() -> None:
    text = "# only comments\n---\napiVersion: v1\nkind: ConfigMap\ndata: {a: '1'}\n...\n"
    result = rewrite_text(text, "cm.yaml", policy())
    assert result.new_text == text and not result.changed and result.findings == ()


_COMMENT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)
_IMAGES = st.sampled_from([("nginx:1.25.3", NGINX), ("busybox:1.36", BUSYBOX), ("redis:7", "redis:7")])
_STYLE = st.sampled_from(["{}", "'{}'", '"{}"'])


@settings(max_examples=60, deadline=None)
@given(
    containers=st.lists(st.tuples(_IMAGES, _STYLE, _COMMENT), min_size=1, max_size=5),
    indent=st.sampled_from([2, 4]),
    indented_sequence=st.booleans(),
    header=_COMMENT,
)
def test_generated_manifests_change_only_their_image_values(
    containers: list[tuple[tuple[str, str], str, str]], indent: int, indented_sequence: bool, header: str
) -> None:
    pad = " " * indent
    dash = pad + (pad if indented_sequence else "") + "- "
    lines = [f"# {header}\n", "apiVersion: v1\n", "kind: Pod\n", "spec:\n", f"{pad}containers:\n"]
    expected = list(lines)
    for index, ((image, target), style, comment) in enumerate(containers):
        item = f"{dash}name: c{index}\n"
        tail = f"  # {comment}\n" if comment else "\n"
        field = " " * len(dash) + "image: "
        lines += [item, field + style.replace("{}", image) + tail]
        expected += [item, field + style.replace("{}", target) + tail]
    text = "".join(lines)
    result = rewrite_text(text, "pod.yaml", policy())
    assert result.new_text == "".join(expected)
    images = [c["image"] for c in yaml.safe_load(result.new_text)["spec"]["containers"]]
    assert images == [target for (_, target), *_ in containers]
