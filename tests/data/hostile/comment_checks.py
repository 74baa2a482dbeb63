"""What a well-formed sticky comment (or job summary) of validate-pr looks like, whatever the pull request held."""

from __future__ import annotations

import re

from bot.report.comment import MARKER

# The template's own HTML; anything else that looks like a tag came from the pull request.
TEMPLATE_TAGS = {"<br>", "<details>", "</details>", "<summary>", "</summary>"}
ROW = re.compile(r"^\| `[^`]+:(\d+)` \|")


def rows_and_hidden(comment: str) -> tuple[list[int], int]:
    rows = [int(match.group(1)) for match in map(ROW.match, comment.splitlines()) if match]
    hidden = re.search(r"… and (\d+) more lines", comment)
    return rows, int(hidden.group(1)) if hidden else 0


def assert_well_formed(markdown: str, *, marker: bool) -> None:
    assert markdown.count(MARKER) == (1 if marker else 0)
    if marker:
        assert markdown.startswith(MARKER + "\n")
    assert markdown.count("<!--") == markdown.count("-->") == (1 if marker else 0)
    tags = set(re.findall(r"</?[A-Za-z][^>\s]*>?", markdown))
    assert tags <= TEMPLATE_TAGS, tags - TEMPLATE_TAGS
    fenced = False
    for text in markdown.splitlines():
        if text.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            assert re.fullmatch(r"docker pull [A-Za-z0-9._:/@\[\]-]+|images:|  - name: \S+|    \w+: \S+", text), text
            continue
        unescaped = re.sub(r"\\.", "", text)
        assert unescaped.count("`") % 2 == 0, text  # every code span is closed on its line
        outside_code = re.sub(r"`[^`]*`", "", unescaped)
        assert not re.search(r"@(?!&#8203;)", outside_code), text  # no mention
        assert not re.search(r"\]\(|://|www\.", outside_code), text  # no link, no autolink
        assert "\r" not in text and "\x00" not in text
        if ROW.match(text):
            assert unescaped.count("|") == 8, text  # seven cells, none split by the line's text
    assert not fenced
