"""Render the pull request comment and the job summary from the templates in ``bot/templates`` (pure).

Text in a pull request is untrusted, so escaping is the default, not something a template must remember:
every ``{{ value }}`` goes through :func:`escape_markdown` (via the environment's ``finalize``) unless a filter
marked it safe. Only two filters produce raw markdown: ``code`` and ``raw_ref``, and both refuse anything but
the characters of a valid image reference. Templates run in jinja2's sandbox with ``StrictUndefined``, so a
misspelt variable is an error, not an empty cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from bot.markdown import escape_markdown
from bot.units import binary_size
from bot.validate import Issue, LineResult, ValidationResult

MARKER = "<!-- image-mirror-bot:validate-pr -->"
TEMPLATE_DIR = Path(__file__).with_name("templates")
# GitHub refuses comments over 65536 characters; stay clear of it.
MAX_COMMENT_CHARS = 60000

# What may appear inside a code span or a code block unescaped: the alphabet of a valid reference.
# Long enough for the longest valid source (255-character name, 128-character tag, digest) under a target prefix.
_REFERENCE_CHARS = re.compile(r"[A-Za-z0-9._:/@\[\]-]{1,1024}")
# Longer text (a megabyte-long line of a pull request) is cut, so one line cannot crowd out the others.
MAX_SHOWN_CHARS = 1024


def _clip(text: str) -> str:
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return f"{text[:MAX_SHOWN_CHARS]}… ({len(text)} characters)"


def _trusted(text: str) -> Markup:
    """Mark text as safe markdown. Callers pass only escaped text, constants, or reference-shaped strings."""
    return Markup(text)  # noqa: S704 -- every caller escapes or validates first (see above)


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    return escape_markdown(_clip(str(value)))


def _code(value: object) -> Markup:
    """An inline code span for a reference-like string; anything else is escaped text."""
    text = str(value)
    if _REFERENCE_CHARS.fullmatch(text):
        return _trusted(f"`{text}`")
    return _trusted(escape_markdown(_clip(text)))


def _raw_ref(value: object) -> Markup:
    """A reference for a code block (no escaping possible there): refused unless it is reference-shaped."""
    text = str(value)
    if not _REFERENCE_CHARS.fullmatch(text):
        raise ValueError(f"refusing to place {text!r} in a code block")
    return _trusted(text)


def _icon(issue: Issue) -> Markup:
    return _trusted("❌" if issue.is_error else "⚠️")


def human_size(count: int | None) -> str:
    if count is None:
        return "-"
    return _trusted(binary_size(count))


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["code"] = _code
    env.filters["raw_ref"] = _raw_ref
    env.filters["size"] = human_size
    env.filters["icon"] = _icon
    return env


_ENV = _environment()


@dataclass(frozen=True, slots=True)
class KustomizeImage:
    name: str
    new_name: str
    new_tag: str | None
    digest: str | None


def kustomize_images(lines: tuple[LineResult, ...]) -> list[KustomizeImage]:
    images = []
    seen = set()
    for line in lines:
        if line.ref is None or line.target is None or line.tags_total is not None:
            continue
        if line.ref.name in seen:
            continue  # kustomize matches by name; one entry per image name
        seen.add(line.ref.name)
        images.append(KustomizeImage(line.ref.name, line.target.name, line.target.tag, line.target.digest))
    return images


def render_report(
    result: ValidationResult,
    *,
    marker: bool = True,
    head_sha: str | None = None,
    max_rows: int | None = None,
) -> str:
    """The markdown of the sticky comment (``marker=True``) or of the job summary."""
    limit = len(result.lines) if max_rows is None else max_rows
    rows = result.lines[:limit]
    # Problems and pull lines of the rows shown, every one of them (a line may have several problems).
    problems = [(line, issue) for line in rows for issue in line.issues]
    pullable = [line for line in rows if line.ok and line.target is not None and line.kind.value == "required"]
    context = {
        "marker": _trusted(MARKER if marker else ""),
        "result": result,
        "rows": rows,
        "hidden_rows": len(result.lines) - len(rows),
        "problems": problems,
        "pullable": pullable,
        "kustomize": kustomize_images(tuple(pullable)),
        "head_sha": head_sha,
        "errors": result.error_count,
        "mirrored": sum(1 for line in result.lines if line.mirrored_at is not None),
    }
    return _ENV.get_template("validate_pr.md.j2").render(context)


def render_comment(result: ValidationResult, *, head_sha: str | None = None) -> str:
    """The sticky comment, shortened (fewer table rows) when it would be too long for GitHub."""
    body = render_report(result, head_sha=head_sha)
    rows = len(result.lines)
    while len(body) > MAX_COMMENT_CHARS and rows > 0:
        rows //= 2
        body = render_report(result, head_sha=head_sha, max_rows=rows)
    return body
