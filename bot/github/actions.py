"""GitHub Actions runtime: workflow commands (annotations, masking), outputs and the job summary.

Everything that may carry text from a pull request is escaped here, so it can never start a workflow command
of its own. The runner reads a line as a command when, after leading whitespace, it starts with ``::`` or when
it holds the legacy ``##[command]`` form anywhere. So CR and LF are encoded (a command must start a line),
property values also encode ``:`` and ``,`` so a file name cannot close the property list, and plain log lines
lose a leading ``::`` and every ``##[``.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from pathlib import Path
from typing import TextIO

from bot.redact import redact
from bot.settings import Settings


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


# C0 controls (tab aside) and DEL: CR and LF would start a new line, the others garble the log.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def safe_line(value: str) -> str:
    """Plain log text that cannot be read as a workflow command.

    Control characters are written as ``%XX``, a ``::`` that would start the line (the runner skips leading
    whitespace) becomes ``:%3A``, and ``##[`` becomes ``##%5B``. Any other ``%`` stays as written: only a
    workflow command's data is decoded, and people read this line.
    """
    value = _CONTROL.sub(lambda match: f"%{ord(match.group()):02X}", redact(value)).replace("##[", "##%5B")
    body = value.lstrip()
    if body.startswith("::"):
        value = value[: len(value) - len(body)] + ":%3A" + body[2:]
    return value


def annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    """One ``::error``/``::warning``/``::notice`` command line."""
    if level not in ("error", "warning", "notice"):
        raise ValueError(level)
    props = []
    if file is not None:
        props.append(f"file={escape_property(file)}")
    if line is not None:
        props.append(f"line={line}")
    if col is not None:
        props.append(f"col={col}")
    if title is not None:
        props.append(f"title={escape_property(redact(title))}")
    prefix = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{prefix}::{escape_data(redact(message))}"


# GitHub shows the first 10 error and the first 10 warning annotations of a step (and 50 of a job); the rest
# are dropped without a word, so the bot stops there and says how many more there are.
ANNOTATIONS_PER_LEVEL = 10


class AnnotationBudget:
    """Counts annotations per level up to what GitHub shows, and the problems left unannotated."""

    def __init__(self, per_level: int = ANNOTATIONS_PER_LEVEL) -> None:
        self.per_level = per_level
        self.used: Counter[str] = Counter()
        self.skipped = 0

    def take(self, level: str) -> bool:
        """True when an annotation of ``level`` may still be written; otherwise count it as skipped."""
        if self.used[level] < self.per_level:
            self.used[level] += 1
            return True
        self.skipped += 1
        return False

    def overflow_notice(self, where: str, *, file: str | None = None) -> str:
        """The one ``::notice`` line saying how many problems got no annotation and ``where`` they are."""
        noun = "problem" if self.skipped == 1 else "problems"
        return annotation(
            "notice",
            f"{self.skipped} more {noun} without an annotation (GitHub shows only the first {self.per_level} "
            f"errors and {self.per_level} warnings of a step): {where}",
            file=file,
        )


def mask(value: str, stream: TextIO) -> None:
    """Ask the runner to hide ``value`` in every later log line."""
    if value:
        stream.write(f"::add-mask::{escape_data(value)}\n")
        stream.flush()


def set_output(name: str, value: str, settings: Settings) -> None:
    """Write a step output to ``GITHUB_OUTPUT`` with a random delimiter (values may span lines)."""
    path = settings.output_path
    if not path:
        return
    delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{redact(value)}\n{delimiter}\n")


def append_summary(markdown: str, settings: Settings) -> None:
    """Append markdown to the job summary (``GITHUB_STEP_SUMMARY``), when there is one."""
    path = settings.summary_path
    if not path:
        return
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(redact(markdown).rstrip("\n") + "\n")
