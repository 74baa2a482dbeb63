"""The list files: parse with ``file:line:col`` problems, write sorted and stable (pure).

- ``required-images.txt``: one image reference per line.
- ``required-images-daily.txt``: one repository per line, no tag or digest.
- ``mirrored-images.txt``: one source reference per line, optionally pinned ``ref@sha256:...``.

In all three ``#`` starts a comment at the start of a line or after whitespace; CRLF, leading and trailing
blanks and empty lines are tolerated. A line is never split into words: ``name - foo`` is one bad line, not
three images.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bot.errors import InvalidReference, ListFileError
from bot.reference import Reference, parse_reference

# Where the lists live in a checkout, relative to its root (the working directory of a run).
MIRROR_DIR = Path("mirror")
REQUIRED_LIST = MIRROR_DIR / "required-images.txt"
DAILY_LIST = MIRROR_DIR / "required-images-daily.txt"
MIRRORED_LIST = MIRROR_DIR / "mirrored-images.txt"
# About 100 000 mirrored images; a bigger list is a mistake or an attack, and is refused before it is read.
MAX_LIST_BYTES = 16 * 1024 * 1024
_COMMENT = re.compile(r"(?:^|[ \t])#")


class ListKind(Enum):
    REQUIRED = "required"
    DAILY = "daily"
    MIRRORED = "mirrored"

    @classmethod
    def for_path(cls, path: str | Path) -> ListKind:
        name = Path(path).name
        if "daily" in name:
            return cls.DAILY
        if name.startswith("mirrored"):
            return cls.MIRRORED
        return cls.REQUIRED


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding in a list file; ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int
    message: str
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        label = "" if self.is_error else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.col}: {label}{self.message}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One reference read from a list, with where it was written."""

    file: str
    line: int
    col: int
    text: str
    ref: Reference


@dataclass(frozen=True, slots=True)
class ListFile:
    path: str
    kind: ListKind
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    col: int
    content: str


def logical_lines(text: str) -> Iterator[Line]:
    """The non-empty, comment-free part of each line, with its 1-based line number and start column."""
    text = text.removeprefix("\ufeff")
    for number, raw_line in enumerate(text.split("\n"), start=1):
        raw = raw_line.removesuffix("\r")
        match = _COMMENT.search(raw)
        body = raw[: match.start()] if match else raw
        stripped = body.strip(" \t")
        if stripped:
            yield Line(number, len(body) - len(body.lstrip(" \t")) + 1, stripped.rstrip("\r"))


def too_large_message(path: str, size: int) -> str:
    return (
        f"{path}: the file is {size} bytes; list files are limited to {MAX_LIST_BYTES} bytes "
        f"({MAX_LIST_BYTES // (1024 * 1024)} MiB): split it or remove lines"
    )


def decode(data: bytes, path: str) -> tuple[str, list[Problem]]:
    """Decode UTF-8; undecodable bytes become a problem at their line and column, never an exception."""
    if len(data) > MAX_LIST_BYTES:
        raise ListFileError(too_large_message(path, len(data)))
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    # Every line with a bad byte is reported, at the column it would have (no UTF-8 sequence holds b"\n").
    problems = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = raw[: exc.start].decode("utf-8", errors="replace")
            if number == 1:
                before = before.removeprefix("\ufeff")  # columns are counted after a byte order mark
            problems.append(
                Problem(path, number, len(before) + 1, "the file is not valid UTF-8 here; save it as UTF-8")
            )
    return data.decode("utf-8", errors="replace"), problems


def parse_list(data: bytes | str, path: str, kind: ListKind | None = None) -> ListFile:
    """Parse a list file's content; every bad line becomes a :class:`Problem`, valid lines become entries."""
    kind = kind or ListKind.for_path(path)
    problems: list[Problem] = []
    if isinstance(data, bytes):
        text, problems = decode(data, path)
    else:
        text = data
    entries: list[Entry] = []
    bad_lines = {problem.line for problem in problems}
    for line in logical_lines(text):
        if line.number in bad_lines:
            continue
        try:
            ref = parse_reference(line.content)
        except InvalidReference as exc:
            problems.append(Problem(path, line.number, line.col + exc.column - 1, exc.reason))
            continue
        problem = _kind_problem(kind, ref, line, path)
        if problem is not None:
            problems.append(problem)
            continue
        entries.append(Entry(path, line.number, line.col, line.content, ref))
    return ListFile(path, kind, tuple(entries), tuple(problems))


def _kind_problem(kind: ListKind, ref: Reference, line: Line, path: str) -> Problem | None:
    if kind is not ListKind.DAILY or (ref.tag is None and ref.digest is None):
        return None
    name_length = len(ref.name)
    return Problem(
        path,
        line.number,
        line.col + name_length,
        "the daily list names repositories only; remove the tag or digest (every new tag is copied)",
    )


def read_list(path: Path, kind: ListKind | None = None, *, missing_ok: bool = False) -> ListFile:
    """Read and parse a list file; a missing file is empty when ``missing_ok``."""
    try:
        with path.open("rb") as handle:
            # The size is checked before reading, and no more than the limit is ever read (a file may grow).
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_LIST_BYTES:
                raise ListFileError(too_large_message(str(path), size))
            data = handle.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        if missing_ok:
            return ListFile(str(path), kind or ListKind.for_path(path), (), ())
        raise ListFileError(f"{path}: file not found") from None
    except OSError as exc:
        raise ListFileError(f"{path}: cannot read the file: {exc.strerror}") from exc
    return parse_list(data, str(path), kind)


def format_mirrored(refs: Iterable[Reference | str]) -> str:
    """``mirrored-images.txt`` content: sorted by byte value, unique, LF line ends, a final newline."""
    lines = sorted({str(ref) for ref in refs})
    return "".join(f"{line}\n" for line in lines)


def write_mirrored(path: Path, refs: Iterable[Reference | str]) -> bool:
    """Write the mirrored list atomically; return True when the content changed."""
    content = format_mirrored(refs).encode("utf-8")
    with locked(path):
        try:
            if path.read_bytes() == content:
                return False
        except FileNotFoundError:
            pass
        write_atomically(path, content)
    return True


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of ``path``, across processes.

    Two runs in one checkout (a self-hosted runner's daily run and a sync by hand) then merge their changes
    one after the other instead of overwriting each other's. The lock is ``flock`` on the directory holding
    ``path``: unlike the file, which each write replaces, the directory stays the same, and no lock file is
    left in the checkout. Temporary files a killed run left behind are removed under the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        # Every writer holds this lock while its temporary file exists: any found now is a killed run's.
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*tmp"):
            with suppress(OSError):
                leftover.unlink()
        yield
    finally:
        os.close(descriptor)  # releases the lock


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once: readers, and a run killed mid-write, see the old file or
    the new one, never part of one.

    The bytes go to a temporary file of a unique name in the same directory (so concurrent writers never
    share one), are flushed to disk, then renamed over ``path``; the file keeps ``path``'s permissions. Hold
    :func:`locked` on ``path`` around it: that also removes the temporary files of killed runs.
    """
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
        Path(name).replace(path)
    except BaseException:
        with suppress(OSError):
            Path(name).unlink()
        raise


class MirroredIndex:
    """Answers "is this image already mirrored, and at which line?" for requests in any spelling."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._by_tag: dict[tuple[str, str, str], Entry] = {}
        self._by_digest: dict[tuple[str, str, str], Entry] = {}
        for entry in entries:
            ref = entry.ref
            tag = ref.effective_tag
            if tag is not None:
                self._by_tag.setdefault((ref.host, ref.repository, tag), entry)
            if ref.digest is not None:
                self._by_digest.setdefault((ref.host, ref.repository, ref.digest), entry)

    def __len__(self) -> int:
        return len(self._by_tag) + len(self._by_digest)

    def find(self, ref: Reference) -> Entry | None:
        """The mirrored entry for ``ref``: same tag (and same digest when the request pins one)."""
        tag = ref.effective_tag
        if tag is not None:
            entry = self._by_tag.get((ref.host, ref.repository, tag))
            if entry is None or ref.digest is None or entry.ref.digest in (None, ref.digest):
                return entry
            return None
        assert ref.digest is not None
        return self._by_digest.get((ref.host, ref.repository, ref.digest))
