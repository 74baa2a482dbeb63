"""Escape untrusted text for GitHub markdown (pull request comments and job summaries)."""

from __future__ import annotations

import re
import unicodedata

# Markdown punctuation is backslash-escaped; HTML's and the table's specials become entities. GitHub links
# mentions (@team), issue numbers (#1) and URLs in the rendered text, after entities are decoded, so a
# zero-width space goes after '@' and '#' and inside '://' and 'www.': the text reads the same, links nothing.
_BACKSLASH = frozenset("\\`*_[]()~$")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;"}
_ZWSP = "&#8203;"
_BREAK = {"@": "@" + _ZWSP, "#": "\\#" + _ZWSP}
_AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=www\.)")


def escape_markdown(text: str) -> str:
    """Make ``text`` render as itself in GitHub markdown: no HTML, links, mentions, emphasis or table breaks."""
    out = []
    for char in _AUTOLINK.sub("\u200b", text):
        if char == "\u200b":
            out.append(_ZWSP)
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(" ")  # line breaks end a table row; bidi and zero-width characters disguise text
        elif char in _ENTITIES:
            out.append(_ENTITIES[char])
        elif char in _BREAK:
            out.append(_BREAK[char])
        elif char in _BACKSLASH:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)
