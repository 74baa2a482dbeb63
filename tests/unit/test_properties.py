"""Property-based tests: any input gives a parsed value or the project's own error, and formatting round-trips."""

from __future__ import annotations

import contextlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Config
from bot.errors import InvalidReference, MappingError
from bot.lists import ListKind, format_mirrored, parse_list
from bot.reference import _PLATFORM, Reference, _parse_checked, parse_reference
from bot.rules import Mapper

alnum = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
separator = st.sampled_from([".", "_", "__", "-", "--"])
component = st.builds(
    lambda first, rest: first + "".join(s + p for s, p in rest),
    alnum,
    st.lists(st.tuples(separator, alnum), max_size=2),
)
path = st.lists(component, min_size=1, max_size=4).map("/".join)
host = st.sampled_from(
    [None, "docker.io", "quay.io", "gcr.io", "registry.k8s.io", "localhost:5000", "127.0.0.1:5000", "[::1]:5000"]
)
tag = st.one_of(
    st.none(),
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from(list(string.ascii_letters + string.digits + "_")),
        st.text(string.ascii_letters + string.digits + "_.-", max_size=40),
    ),
)
digest = st.one_of(st.none(), st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}"))


def _writable(ref: Reference) -> bool:
    """A value someone can write: without a host, the first path component must not read as one."""
    if len(ref.name) > 255:
        return False
    first, slash, _ = ref.path.partition("/")
    if ref.registry is None and slash and ("." in first or first == "localhost"):
        return False
    return not (ref.registry is None and ref.tag is None and ref.digest is None and _PLATFORM.fullmatch(ref.path))


references = st.builds(Reference, host, path, tag, digest).filter(_writable)


@given(references)
def test_parse_of_format_is_identity(ref: Reference) -> None:
    assert parse_reference(str(ref)) == ref


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_any_text_parses_or_raises_the_projects_error(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        assert 1 <= exc.column <= max(len(text), 1) + 1
        return
    assert str(ref) == text


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=200))
def test_ascii_noise_parses_or_raises_the_projects_error(text: str) -> None:
    with contextlib.suppress(InvalidReference):
        parse_reference(text)


@given(st.binary(max_size=2000), st.sampled_from(list(ListKind)))
def test_any_bytes_give_entries_or_problems(data: bytes, kind: ListKind) -> None:
    parsed = parse_list(data, "list.txt", kind)
    lines = data.count(b"\n") + 1
    for problem in parsed.problems:
        assert 1 <= problem.line <= lines
        assert problem.col >= 1
    for entry in parsed.entries:
        assert 1 <= entry.line <= lines


@given(st.lists(references, max_size=20))
def test_mirrored_list_round_trips(refs: list[Reference]) -> None:
    text = format_mirrored(refs)
    parsed = parse_list(text, "mirrored-images.txt")
    assert parsed.problems == ()
    assert format_mirrored(entry.ref for entry in parsed.entries) == text


@given(references)
def test_mapping_gives_a_target_or_the_projects_error(ref: Reference) -> None:
    mapper = Mapper(Config())
    try:
        target = mapper.target(ref)
    except MappingError:
        assert ref.host not in mapper.hosts
        return
    assert parse_reference(str(target)).tag == ref.effective_tag


@given(st.one_of(references.map(str), st.text(string.ascii_letters + string.digits + "._-/:@[]", max_size=80)))
@settings(max_examples=500)
def test_fast_path_and_checked_parser_agree(text: str) -> None:
    try:
        checked: Reference | None = _parse_checked(text)
    except InvalidReference:
        checked = None
    try:
        fast: Reference | None = parse_reference(text)
    except InvalidReference:
        fast = None
    assert fast == checked
