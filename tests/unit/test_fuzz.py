"""Hypothesis fuzzing with hostile alphabets: the parsers, the path rules and the comment renderer.

tests/unit/test_properties.py covers arbitrary text and well-formed references; these generate what an
attacker would type (the reference's own punctuation mixed with control characters, look-alikes, markup and
invalid UTF-8) and check the stronger promises: problems point inside the line, messages stay short, mirror
paths are valid and reversible, and the comment stays well-formed.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Config, Limits
from bot.errors import InvalidReference, MappingError
from bot.lists import ListKind, parse_list
from bot.reference import Reference, is_repository_path, parse_reference
from bot.report.comment import render_comment, render_report
from bot.rules import Mapper
from bot.validate import ERROR, ImageFacts, Issue, LineResult, ValidationResult
from tests.data.hostile.comment_checks import assert_well_formed, rows_and_hidden
from tests.harness import figures

EXAMPLES = 300
HOSTILE = (
    string.ascii_letters
    + string.digits
    + "._-/:@[]#%$`|<>&;!*()~\\'\" \t\r\x00\x1b\x7f"
    + "\u0456\u03bf\uff4e\u200b\u200d\u202e\ufeff\u2028\u00a0"
)
hostile_text = st.text(alphabet=HOSTILE, max_size=80)
fuzzed = [0]


def counted() -> None:
    fuzzed[0] += 1


def teardown_module() -> None:
    figures.count("fuzz examples", fuzzed[0])


# --- parsers ---------------------------------------------------------------------------------------------------


@given(hostile_text)
@settings(max_examples=EXAMPLES)
def test_reference_errors_point_inside_the_text_and_stay_short(text: str) -> None:
    counted()
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        assert 1 <= exc.column <= len(text) + 1
        assert len(exc.reason) <= 200  # a message never grows with the input
        return
    assert str(ref) == text


@given(st.integers(min_value=61, max_value=5000), st.sampled_from(["quay.io:{}/x", "[{}]/x", "x@{}:abcd", "{}/x"]))
@settings(max_examples=50)
def test_a_long_bad_part_is_cut_in_the_message(length: int, shape: str) -> None:
    counted()
    text = shape.format("9" * length if shape.startswith("quay") else "z" * length)
    try:
        parse_reference(text)
    except InvalidReference as exc:
        assert len(exc.reason) <= 200, exc.reason
        return


line_endings = st.sampled_from(["\n", "\r\n"])
list_lines = st.lists(st.tuples(hostile_text, line_endings), max_size=12)


@given(
    list_lines, st.booleans(), st.lists(st.binary(min_size=1, max_size=3), max_size=3), st.sampled_from(list(ListKind))
)
@settings(max_examples=EXAMPLES)
def test_list_problems_point_inside_their_line(
    lines: list[tuple[str, str]], bom: bool, noise: list[bytes], kind: ListKind
) -> None:
    counted()
    data = ("\ufeff" if bom else "").encode() + b"".join(text.encode() + end.encode() for text, end in lines)
    for index, junk in enumerate(noise):  # raw bytes, often invalid UTF-8, at seeded places
        at = (index * 7919) % (len(data) + 1)
        data = data[:at] + junk + data[at:]
    parsed = parse_list(data, "list.txt", kind)
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    physical = [line.removesuffix("\r") for line in text.split("\n")]
    for problem in parsed.problems:
        assert 1 <= problem.line <= len(physical)
        assert 1 <= problem.col <= len(physical[problem.line - 1]) + 1, (problem, physical[problem.line - 1])
    for entry in parsed.entries:
        written = physical[entry.line - 1]
        assert written[entry.col - 1 : entry.col - 1 + len(entry.text)] == entry.text
    assert len({problem.line for problem in parsed.problems} & {entry.line for entry in parsed.entries}) == 0


# --- path rules ------------------------------------------------------------------------------------------------

alnum = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)
component = st.builds(
    lambda first, rest: first + "".join(s + p for s, p in rest),
    alnum,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "---"]), alnum), max_size=2),
)
hosts = st.sampled_from(
    [
        None,
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "DOCKER.IO",
        "gcr.io",
        "asia.gcr.io",
        "quay.io",
        "registry.k8s.io",
        "k8s.gcr.io",
        "ghcr.io",
        "public.ecr.aws",
        "602401143452.dkr.ecr.us-west-2.amazonaws.com",
    ]
)
tags = st.one_of(
    st.none(),
    st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=20).filter(
        lambda tag: tag[0] not in ".-"
    ),
)
digests = st.one_of(st.none(), st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}"))
mappers = st.sampled_from(
    [Mapper(Config()), Mapper(Config().with_target_registry("mirror.example.com:5000/team/mirror"))]
)
# Several sources share one target prefix (the gcr.io regions, k8s.gcr.io and registry.k8s.io): the reverse
# gives the first of them, which maps to the same place.
SHARED_TARGETS = {"gcr.io", "asia.gcr.io", "us.gcr.io", "eu.gcr.io", "k8s.gcr.io", "registry.k8s.io"}


@given(hosts, st.lists(component, min_size=1, max_size=4).map("/".join), tags, digests, mappers)
@settings(max_examples=EXAMPLES)
def test_mirror_paths_are_valid_and_reverse_to_the_same_image(
    host: str | None, path: str, tag: str | None, digest: str | None, mapper: Mapper
) -> None:
    counted()
    text = str(Reference(host, path, tag, digest))
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return  # too long, or a platform name: the parser's business
    try:
        target = mapper.target(ref)
    except MappingError:
        return  # a Docker Hub path the reverse rules could read as another registry's prefix is still mapped
    assert target.registry == mapper.registry
    assert is_repository_path(target.repository)
    assert all(part not in ("", ".", "..") for part in target.repository.split("/"))
    written = str(target)
    back = parse_reference(written)
    assert (back.registry, back.path, back.tag, back.digest) == (
        target.registry,
        target.repository,
        target.tag,
        target.digest,
    )
    source = mapper.source(written)
    assert mapper.target(source) == target
    if ref.host not in SHARED_TARGETS:
        assert source.identity() == ref.identity()


# --- the comment -----------------------------------------------------------------------------------------------

REQUIRED = "mirror/required-images.txt"
issues = st.builds(Issue, hostile_text, hostile_text, st.sampled_from([ERROR, "warning"]), st.integers(1, 90))
valid_refs = st.sampled_from(
    ["nginx:1.25", "quay.io/calico/node:v3", f"ghcr.io/a/b@sha256:{'c' * 64}", "registry.k8s.io/pause:3.9"]
)


@st.composite
def line_results(draw: st.DrawFn, number: int) -> LineResult:
    text = draw(st.one_of(hostile_text, valid_refs))
    line_issues = tuple(draw(st.lists(issues, max_size=2)))
    ref = target = facts = None
    if draw(st.booleans()):
        ref = parse_reference(draw(valid_refs))
        target = Mapper(Config(target_registry="mirror.example.com")).target(ref)
        platforms = tuple(draw(st.lists(hostile_text, max_size=2)))
        facts = ImageFacts("sha256:" + "a" * 64, platforms, draw(st.integers(0, 2**40)))
    return LineResult(REQUIRED, number, 1, text, ListKind.REQUIRED, ref, target, facts, issues=line_issues)


@st.composite
def results(draw: st.DrawFn) -> ValidationResult:
    count = draw(st.integers(0, 6))
    lines = tuple(draw(line_results(number)) for number in range(2, count + 2))
    return ValidationResult(lines, tuple(draw(st.lists(issues, max_size=2))), Limits(), (REQUIRED,))


@given(results(), st.one_of(st.none(), hostile_text))
@settings(max_examples=EXAMPLES)
def test_the_comment_stays_well_formed_whatever_the_text(result: ValidationResult, head_sha: str | None) -> None:
    counted()
    body = render_comment(result, head_sha=head_sha)
    assert_well_formed(body, marker=True)
    assert rows_and_hidden(body) == ([line.line for line in result.lines], 0)
    problems = sum(len(line.issues) for line in result.lines) + len(result.issues)
    assert body.count("**Fix:**") == problems
    assert_well_formed(render_report(result, marker=False), marker=False)
