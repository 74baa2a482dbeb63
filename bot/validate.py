"""Validate the lines a pull request adds to the list files (the use case behind ``validate-pr``).

Input is data: each changed list file's content before and after the pull request. Output is data: one
:class:`LineResult` per added line (target path, platforms, size, problems with the reason and the fix) plus
problems of the pull request as a whole (limits). The only side effect is through :class:`Upstream`, which the
caller provides (the registry client in production, a local registry in tests).

Order of checks per line: syntax, then registry allowed and not denied, then duplicates and already mirrored,
and only then the upstream registry. A reference no rule allows never reaches :class:`Upstream`, so a pull
request cannot make the bot contact ``169.254.169.254`` or ``localhost``.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.checks import LineChecks, Verdict, name_column
from bot.collisions import FIX as COLLISION_FIX
from bot.collisions import PathClaims
from bot.config import DailyConfig, Limits
from bot.daily import TagFilter
from bot.errors import AuthError, AwsError, BotError, MappingError, NotFound, Refusal, TargetNameError
from bot.lists import MAX_LIST_BYTES, Entry, ListKind, MirroredIndex, logical_lines, parse_list, too_large_message
from bot.reference import Reference, is_tag
from bot.registry.artifacts import count_phrase
from bot.rules import Mapper, Target
from bot.units import binary_size, clip_text, fit

ERROR = "error"
WARNING = "warning"

# Lines beyond this many times the new-line limit are only checked offline: a pull request must not be able
# to make the bot send thousands of registry requests.
UPSTREAM_LINE_FACTOR = 4
DEFAULT_WORKERS = 8


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the upstream registry says about one image."""

    digest: str
    platforms: tuple[str, ...]
    size: int  # compressed bytes: manifests' config and layers, every platform
    kind: str = "image"  # or Helm chart, SBOM, signature, attestation, artifact
    signed: bool | None = None  # a cosign signature tag or a signature referrer upstream; None: not looked at
    attached: tuple[str, ...] = ()  # kinds of what is attached upstream, one per artifact

    @property
    def is_image(self) -> bool:
        return self.kind == "image"


class Upstream(Protocol):
    """Read-only questions to source registries. Implementations must be safe to call from several threads."""

    def inspect(self, ref: Reference) -> ImageFacts:
        """Digest, platforms and compressed size; raise NotFound, AuthError or RegistryError."""
        ...

    def tags(self, ref: Reference) -> Sequence[str]:
        """Every tag of the repository of ``ref``; raise NotFound when the repository does not exist."""
        ...


@dataclass(frozen=True, slots=True)
class ListChange:
    """One list file of the pull request: content at the base and at the head (``None``: absent)."""

    path: str
    base: bytes | None
    head: bytes | None
    kind: ListKind | None = None
    refused: str | None = None  # why the head could not be read at all (a file over the size limit)

    @property
    def list_kind(self) -> ListKind:
        return self.kind or ListKind.for_path(self.path)


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem with a line (or with the whole pull request when ``line`` is 0)."""

    message: str
    fix: str
    severity: str = ERROR
    col: int = 1
    limit: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR


@dataclass(frozen=True, slots=True)
class LineResult:
    file: str
    line: int
    col: int
    text: str
    kind: ListKind
    ref: Reference | None = None
    target: Target | None = None
    facts: ImageFacts | None = None
    mirrored_at: str | None = None  # "mirror/mirrored-images.txt:12" when already mirrored
    tags_total: int | None = None  # daily lines: tags upstream
    tags_to_copy: int | None = None  # daily lines: tags the next daily run would copy
    issues: tuple[Issue, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(issue.is_error for issue in self.issues)

    @property
    def status(self) -> str:
        if not self.ok:
            return ERROR
        if self.mirrored_at is not None:
            return "mirrored"
        if self.issues:
            return WARNING
        return "ok"

    @property
    def is_new_image(self) -> bool:
        """A valid request that the next sync will copy."""
        return self.ok and self.kind is ListKind.REQUIRED and self.mirrored_at is None and self.target is not None

    @property
    def size(self) -> int | None:
        return self.facts.size if self.facts is not None else None


@dataclass(frozen=True, slots=True)
class ValidationResult:
    lines: tuple[LineResult, ...]
    issues: tuple[Issue, ...]  # about the pull request as a whole
    limits: Limits
    files: tuple[str, ...] = ()
    offline: bool = False  # no upstream registry was asked: no platforms, sizes or daily tag counts

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.lines) and not any(issue.is_error for issue in self.issues)

    @property
    def new_bytes(self) -> int:
        return sum(line.size or 0 for line in self.lines if line.is_new_image)

    @property
    def error_count(self) -> int:
        return sum(1 for line in self.lines if not line.ok) + sum(1 for issue in self.issues if issue.is_error)

    @property
    def valid(self) -> tuple[LineResult, ...]:
        return tuple(line for line in self.lines if line.ok and line.target is not None)


@dataclass
class _Work:
    """Mutable per-line state while checks run; frozen into a LineResult at the end."""

    entry: Entry | None
    result: LineResult
    issues: list[Issue] = field(default_factory=list)


def added_line_numbers(base: str | None, head: str) -> set[int]:
    """1-based numbers of the lines of ``head`` that are not in ``base`` (by a line diff)."""
    head_lines = head.split("\n")
    if base is None:
        return set(range(1, len(head_lines) + 1))
    base_lines = base.split("\n")
    normalise = [line.rstrip("\r \t") for line in base_lines], [line.rstrip("\r \t") for line in head_lines]
    matcher = difflib.SequenceMatcher(None, *normalise, autojunk=False)
    opcodes = matcher.get_opcodes()
    # A line that only moved (a sorted list) is not new: it pairs off with a removed line of the same text.
    removed = Counter(line for tag, i1, i2, _j1, _j2 in opcodes if tag != "equal" for line in normalise[0][i1:i2])
    added: set[int] = set()
    for tag, _i1, _i2, j1, j2 in opcodes:
        if tag in ("insert", "replace"):
            for number in range(j1 + 1, j2 + 1):
                line = normalise[1][number - 1]
                if removed[line] > 0 and line.strip():
                    removed[line] -= 1
                else:
                    added.add(number)
    return added


def _decode(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def validate_changes(
    changes: Iterable[ListChange],
    *,
    mapper: Mapper,
    upstream: Upstream | None,
    limits: Limits,
    mirrored: MirroredIndex,
    claims: PathClaims | None = None,
    daily: DailyConfig | None = None,
    workers: int = DEFAULT_WORKERS,
    require_signature: tuple[str, ...] = (),
) -> ValidationResult:
    """Check every line the pull request adds; see the module docstring for the order of checks.

    ``require_signature`` patterns (``host`` or ``host/repository``) name images that must carry a signature
    upstream; an unsigned one is an error. ``upstream=None`` runs the offline checks alone (a preview without
    network or credentials).
    """
    tag_filter = TagFilter.from_config(daily or DailyConfig())
    works: list[_Work] = []
    files: list[str] = []
    refused: list[Issue] = []
    for change in changes:
        why = change.refused
        if why is None and change.head is not None and len(change.head) > MAX_LIST_BYTES:
            why = too_large_message(change.path, len(change.head))
        if why is not None:
            files.append(change.path)
            refused.append(
                Issue(
                    why,
                    "list files hold one image per line; add a few images per pull request, not a whole file",
                )
            )
            continue
        if change.head is None:
            continue
        files.append(change.path)
        works.extend(_offline_checks(change, mapper, mirrored, claims))

    budget = max(limits.max_new_lines, 1) * UPSTREAM_LINE_FACTOR
    online = [work for work in works if work.entry is not None and not work.issues and work.result.target is not None]
    online = [work for work in online if work.result.mirrored_at is None]
    if upstream is None:
        online = []
    checked, skipped = online[:budget], online[budget:]
    for work in skipped:
        work.issues.append(
            Issue(
                "not checked upstream: the pull request adds too many lines",
                f"split the request into pull requests of at most {limits.max_new_lines} lines",
            )
        )
    if checked and upstream is not None:
        source = upstream
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(checked))), thread_name_prefix="validate") as pool:
            list(pool.map(lambda work: _online_check(work, source, limits, mirrored, tag_filter), checked))
        for work in checked:
            _signature_check(work, require_signature)

    lines = tuple(replace(work.result, issues=tuple(work.issues)) for work in works)
    issues = (*refused, *_pull_request_issues(lines, limits))
    return ValidationResult(lines, issues, limits, tuple(files), offline=upstream is None)


def _offline_checks(
    change: ListChange, mapper: Mapper, mirrored: MirroredIndex, claims: PathClaims | None
) -> list[_Work]:
    kind = change.list_kind
    head_text = _decode(change.head) or ""
    added = added_line_numbers(_decode(change.base), head_text)
    parsed = parse_list(change.head or b"", change.path, kind)
    entries = {entry.line: entry for entry in parsed.entries}
    problems = {problem.line: problem for problem in parsed.problems}
    checks = LineChecks(kind, mapper, mirrored, claims)
    for listed in parsed.entries:  # the file's older lines first: an added line is compared with them
        if listed.line not in added:
            checks.listed(listed)

    works: list[_Work] = []
    for line in logical_lines(head_text):
        if line.number not in added:
            continue
        result = LineResult(change.path, line.number, line.col, line.content, kind)
        problem = problems.get(line.number)
        entry = entries.get(line.number)
        work = _Work(entry, result)
        works.append(work)
        if problem is not None or entry is None:
            message = problem.message if problem is not None else "not a valid line"
            col = problem.col if problem is not None else line.col
            work.issues.append(Issue(message, _syntax_fix(kind), col=col))
            continue
        verdict = checks.check(entry)
        work.result = replace(result, ref=entry.ref, target=verdict.path)
        issue = _offline_issue(verdict, added, mapper)
        if issue is not None:
            work.issues.append(issue)
        if verdict.mirrored is not None and issue is not None and verdict.path is not None:
            done = verdict.mirrored
            work.result = replace(work.result, target=_copied_at(verdict.path, done, mapper), mirrored_at=_where(done))
    return works


def _offline_issue(verdict: Verdict, added: set[int], mapper: Mapper) -> Issue | None:
    """The verdict of the offline checks as a pull request's line shows it: the reason and the fix."""
    entry = verdict.entry
    if verdict.duplicate is not None:
        twin = verdict.duplicate
        if twin.line in added:
            return Issue(
                f"duplicate of line {twin.line} of this pull request ({twin.text})", "remove this line", col=entry.col
            )
        return Issue(f"already listed at {_where(twin)} ({twin.text})", "remove this line", col=entry.col)
    if isinstance(verdict.refused, TargetNameError):
        return Issue(verdict.refused.detail, verdict.refused.fix, col=name_column(entry, verdict.refused))
    if verdict.refused is not None:
        return Issue(verdict.refused.reason, _mapping_fix(verdict.refused), col=entry.col)
    if verdict.clash is not None and verdict.path is not None:
        message = verdict.clash.message(verdict.path, recorded=verdict.recorded)
        return Issue(message, COLLISION_FIX, col=entry.col)
    if verdict.mirrored is not None and verdict.path is not None:
        done = verdict.mirrored
        return Issue(
            f"already mirrored at {_copied_at(verdict.path, done, mapper)} ({_where(done)})",
            "nothing to do: pull from the mirror path; this line can be removed",
            severity=WARNING,
            col=entry.col,
        )
    return None


def _copied_at(target: Target, done: Entry, mapper: Mapper) -> Target:
    """Where the mirrored copy is: where the recorded spelling maps to (``nginx`` vs ``docker.io/library/nginx``)."""
    try:
        copied = mapper.target(done.ref)
    except MappingError:
        return target
    return Target(copied.registry, copied.repository, target.tag, target.digest)


def _where(entry: Entry) -> str:
    return f"{entry.file}:{entry.line}"


def _online_check(
    work: _Work, upstream: Upstream, limits: Limits, mirrored: MirroredIndex, tag_filter: TagFilter
) -> None:
    ref = work.result.ref
    assert ref is not None
    col = work.result.col
    try:
        if work.result.kind is ListKind.DAILY:
            # A registry's tag list is data: a name outside the tag grammar is no tag the daily run would copy.
            tags = [tag for tag in upstream.tags(ref) if is_tag(tag)]
            selected = tag_filter.select(tags)
            new = [tag for tag in selected if mirrored.find(ref.with_tag(tag)) is None]
            work.result = replace(work.result, tags_total=len(tags), tags_to_copy=len(new))
            if not new:
                work.issues.append(
                    Issue(
                        f"the daily run would copy no tag: {len(tags)} tags upstream, none selected by the "
                        "daily: filters or all already mirrored",
                        "check the repository name and the daily: settings in mirror/config.yml",
                        severity=WARNING,
                        col=col,
                    )
                )
            return
        facts = upstream.inspect(ref)
    except NotFound:
        what = "repository" if work.result.kind is ListKind.DAILY else "image"
        work.issues.append(Issue(f"the {what} does not exist upstream: {ref}", _not_found_fix(ref), col=col))
        return
    except AwsError as exc:  # a private ECR source: the bot could not mint its registry token
        work.issues.append(
            Issue(
                f"could not read {ref}: {exc.message}",
                "the maintainers must give the bot AWS credentials that may read this registry "
                "(ecr.sources.profile or ecr.sources.role_arn in mirror/config.yml; see 'Private ECR sources' "
                "in the README)",
                col=col,
            )
        )
        return
    except AuthError:
        work.issues.append(
            Issue(
                f"the upstream registry refused access to {ref} (a private image, or the name is wrong)",
                "only public images can be mirrored; check the spelling of the repository",
                col=col,
            )
        )
        return
    except BotError as exc:  # RegistryError and anything else the client reports
        reason = exc.message.splitlines()[0] if exc.message else "no answer"
        work.issues.append(
            Issue(
                f"could not check {ref} upstream: {reason}",
                "this is usually temporary; push again or re-run the check",
                col=col,
            )
        )
        return
    work.result = replace(work.result, facts=facts)
    if facts.size > limits.max_image_bytes:
        work.issues.append(
            Issue(
                f"the image is {binary_size(facts.size)} compressed, over the limit of "
                f"{binary_size(limits.max_image_bytes)} per image (limits.max_image_bytes)",
                "mirror a smaller tag, or ask the maintainers to raise limits.max_image_bytes in mirror/config.yml",
                col=col,
                limit="limits.max_image_bytes",
            )
        )


def _signature_check(work: _Work, patterns: tuple[str, ...]) -> None:
    """An image a ``require_signature`` pattern covers must carry a signature upstream."""
    from bot.registry.referrers import required_by

    facts, ref = work.result.facts, work.result.ref
    if facts is None or ref is None or facts.signed is not False:
        return
    pattern = required_by(patterns, ref.canonical_name)
    if pattern is None:
        return
    work.issues.append(
        Issue(
            f"the upstream image carries no signature (no cosign signature tag, no signature referrer), and "
            f"images of {pattern} must be signed (require_signature in mirror/config.yml)",
            "request a tag its publishers signed (cosign sign), or ask the maintainers to drop the pattern "
            "from require_signature",
            col=work.result.col,
        )
    )


def _pull_request_issues(lines: tuple[LineResult, ...], limits: Limits) -> tuple[Issue, ...]:
    issues = []
    if len(lines) > limits.max_new_lines:
        issues.append(
            Issue(
                f"the pull request adds {len(lines)} lines, over the limit of {limits.max_new_lines} "
                "(limits.max_new_lines)",
                f"split the request into pull requests of at most {limits.max_new_lines} lines",
                limit="limits.max_new_lines",
            )
        )
    total = sum(line.size or 0 for line in lines if line.is_new_image)
    if total > limits.max_pr_bytes:
        issues.append(
            Issue(
                f"the new images add up to {binary_size(total)} compressed, over the limit of "
                f"{binary_size(limits.max_pr_bytes)} per pull request (limits.max_pr_bytes)",
                "split the request into several pull requests, merged one after the other",
                limit="limits.max_pr_bytes",
            )
        )
    return tuple(issues)


def _syntax_fix(kind: ListKind) -> str:
    if kind is ListKind.DAILY:
        return "write one repository per line without a tag, e.g. quay.io/calico/node"
    return "write one image reference per line, e.g. nginx:1.25.3 or quay.io/calico/node:v3.27.0"


def _mapping_fix(exc: MappingError) -> str:
    if exc.refusal is Refusal.DENIED:
        return "this image cannot be mirrored; remove the line"
    return "use an image from an allowed registry, or ask the maintainers to add a rule in mirror/config.yml"


def _not_found_fix(ref: Reference) -> str:
    if ref.tag is None and ref.digest is None:
        return "check the repository name; a reference without a tag means ':latest', which may not exist"
    return "check the spelling of the repository and that the tag exists upstream"


# Output bounds. Text from a pull request is cut to MAX_SHOWN_CHARS wherever it is shown (comment, job summary,
# log, ``result`` output), so a megabyte-long line cannot crowd out the others. The ``result`` output holds
# the counts and as many lines as fit: GitHub allows 1 MB of outputs per job, counted as UTF-16, and the JSON
# is ASCII (two bytes a character there), so 256 Ki characters take half of it.
MAX_SHOWN_CHARS = 1024
MAX_OUTPUT_LINES = 200
MAX_OUTPUT_CHARS = 256 * 1024
STATUSES = ("ok", "mirrored", "warning", ERROR)


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """Pull-request ``text`` as shown anywhere: cut to ``limit`` characters with a note of its real length."""
    return clip_text(text, limit)


def _issue_json(issue: Issue) -> dict[str, object]:
    return {
        "severity": issue.severity,
        "col": issue.col,
        "message": clip(issue.message),
        "fix": clip(issue.fix),
        "limit": issue.limit,
    }


def _line_json(line: LineResult) -> dict[str, object]:
    return {
        "file": line.file,
        "line": line.line,
        "text": clip(line.text),
        "status": line.status,
        "target": None if line.target is None else clip(str(line.target)),
        "digest": None if line.facts is None else line.facts.digest,
        "platforms": [] if line.facts is None else list(line.facts.platforms),
        "kind": None if line.facts is None else line.facts.kind,
        "signed": None if line.facts is None else line.facts.signed,
        "attached": None if line.facts is None else count_phrase(line.facts.attached),
        "size": line.size,
        "mirrored_at": line.mirrored_at,
        "tags_to_copy": line.tags_to_copy,
        "issues": [_issue_json(issue) for issue in line.issues],
    }


def result_to_json(result: ValidationResult, *, max_lines: int | None = None) -> dict[str, object]:
    """The result as plain JSON data: counts of every line, then the first ``max_lines`` lines (all by default).

    ``truncated`` says that ``lines`` holds fewer than ``total_lines``; ``counts`` counts lines by status.
    """
    shown = result.lines if max_lines is None else result.lines[: max(0, max_lines)]
    counts = Counter(line.status for line in result.lines)
    return {
        "ok": result.ok,
        "errors": result.error_count,
        "new_bytes": result.new_bytes,
        "total_lines": len(result.lines),
        "counts": {status: counts[status] for status in STATUSES},
        "truncated": len(shown) < len(result.lines),
        "issues": [_issue_json(issue) for issue in result.issues],
        "lines": [_line_json(line) for line in shown],
    }


def result_output(
    result: ValidationResult, *, max_lines: int = MAX_OUTPUT_LINES, max_chars: int = MAX_OUTPUT_CHARS
) -> str:
    """The action's ``result`` output: compact JSON of at most ``max_chars`` characters (when any line fits)."""

    def render(count: int) -> str:
        return json.dumps(result_to_json(result, max_lines=count), separators=(",", ":"))

    text, _ = fit(render, len(result.lines), start=max_lines, budget=max_chars, size=len)
    return text
