"""Render the pull request comment and the job summary from the templates in ``bot/report/templates`` (pure).

Text in a pull request is untrusted, so escaping is the default, not something a template must remember:
every ``{{ value }}`` goes through :func:`escape_markdown` (via the environment's ``finalize``) unless a filter
marked it safe. Only two filters produce raw markdown: ``code`` and ``raw_ref``, and both refuse anything but
the characters of a valid image reference. Templates run in jinja2's sandbox with ``StrictUndefined``, so a
misspelt variable is an error, not an empty cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from bot.redact import redact
from bot.registry.artifacts import count_phrase
from bot.report.markdown import escape_markdown
from bot.report.summary import MAX_ROWS, MAX_SUMMARY_BYTES
from bot.rewrite.kustomize import Use, image_entries, images_block
from bot.units import binary_size, fit
from bot.validate import Issue, LineResult, ValidationResult, clip

MARKER = "<!-- image-mirror-bot:validate-pr -->"
TEMPLATE_DIR = Path(__file__).with_name("templates")
# GitHub refuses comments over 65536 characters; stay clear of it.
MAX_COMMENT_CHARS = 60000

# What may appear inside a code span or a code block unescaped: the alphabet of a valid reference.
# Long enough for the longest valid source (255-character name, 128-character tag, digest) under a target prefix.
_REFERENCE_CHARS = re.compile(r"[A-Za-z0-9._:/@\[\]-]{1,1024}")


def _trusted(text: str) -> Markup:
    """Mark text as safe markdown. Callers pass only escaped text, constants, or reference-shaped strings."""
    return Markup(text)  # noqa: S704 -- every caller escapes or validates first (see above)


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    return escape_markdown(clip(str(value)))


def _code(value: object) -> Markup:
    """An inline code span for a reference-like string; anything else is escaped text."""
    text = str(value)
    if _REFERENCE_CHARS.fullmatch(text):
        return _trusted(f"`{text}`")
    return _trusted(escape_markdown(clip(text)))


def _raw_ref(value: object) -> Markup:
    """A reference for a code block (no escaping possible there): refused unless it is reference-shaped."""
    text = str(value)
    if not _REFERENCE_CHARS.fullmatch(text):
        raise ValueError(f"refusing to place {text!r} in a code block")
    return _trusted(text)


def _icon(issue: Issue) -> Markup:
    return _trusted("❌" if issue.is_error else "⚠️")


def _size(count: int | None) -> str:
    """The template's ``size`` filter: :func:`bot.units.binary_size`, or ``-`` when unknown."""
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
    env.filters["size"] = _size
    env.filters["icon"] = _icon
    env.filters["attached"] = count_phrase
    return env


_ENV = _environment()


def kustomize_block(lines: Iterable[LineResult]) -> Markup:
    """The ``images:`` block for the valid image lines, for a code block: refused unless every name, path,
    tag and digest in it is reference-shaped (nothing in a code block can be escaped)."""
    entries, _ = image_entries(Use(line.ref, line.target.name) for line in lines if line.ref and line.target)
    for entry in entries:
        for value in (entry.name, entry.new_name, entry.new_tag, entry.digest):
            if value is not None:
                _raw_ref(value)
    return _trusted(images_block(entries, indent="  ", notes=False))  # a code block: nothing but references


def render_report(
    result: ValidationResult,
    *,
    marker: bool = True,
    head_sha: str | None = None,
    max_rows: int | None = None,
    summary_rows: int | None = None,
) -> str:
    """The markdown of the sticky comment (``marker=True``) or of the job summary.

    ``max_rows`` limits the table rows (and the problems and pull lines that go with them); ``summary_rows``
    is how many rows the job summary holds, so the comment can say where the rows it leaves out are.
    """
    limit = len(result.lines) if max_rows is None else max_rows
    rows = result.lines[:limit]
    # Problems and pull lines of the rows shown, every one of them (a line may have several problems).
    problems = [(line, issue) for line in rows for issue in line.issues]
    # A Helm chart, an SBOM or a signature is no image to pull: it gets no docker pull line.
    pullable = [
        line
        for line in rows
        if line.ok
        and line.target is not None
        and line.kind.value == "required"
        and (line.facts is None or line.facts.is_image)
    ]
    context = {
        "marker": _trusted(MARKER if marker else ""),
        "result": result,
        "rows": rows,
        "hidden_rows": len(result.lines) - len(rows),
        "summary_rows": summary_rows,
        "problems": problems,
        "pullable": pullable,
        "kustomize": kustomize_block(pullable),
        "head_sha": head_sha,
        "errors": result.error_count,
        "mirrored": sum(1 for line in result.lines if line.mirrored_at is not None),
        "new_images": sum(1 for line in result.lines if line.is_new_image),
    }
    return redact(_ENV.get_template("validate_pr.md.j2").render(context))


@dataclass(frozen=True, slots=True)
class Summary:
    """The job summary's markdown and how many table rows (added lines) it holds."""

    markdown: str
    rows: int


def render_summary(result: ValidationResult) -> Summary:
    """The job summary: at most :data:`MAX_ROWS` rows and :data:`MAX_SUMMARY_BYTES` bytes of UTF-8.

    Rows left out are counted at the end of the table, which points to the log (it lists every problem).
    """

    def render(rows: int) -> str:
        return render_report(result, marker=False, max_rows=rows)

    markdown, rows = fit(
        render, len(result.lines), start=MAX_ROWS, budget=MAX_SUMMARY_BYTES, size=lambda text: len(text.encode())
    )
    return Summary(markdown, rows)


def render_comment(result: ValidationResult, *, head_sha: str | None = None, summary_rows: int | None = None) -> str:
    """The sticky comment, shortened (fewer table rows) when it would be too long for GitHub.

    ``summary_rows`` is how many rows the job summary holds (by default: what :func:`render_summary` makes).
    """
    if summary_rows is None:
        summary_rows = render_summary(result).rows

    def render(rows: int) -> str:
        return render_report(result, head_sha=head_sha, max_rows=rows, summary_rows=summary_rows)

    body, _ = fit(render, len(result.lines), start=MAX_ROWS, budget=MAX_COMMENT_CHARS, size=len)
    return body
