"""Rewrite the images of one file's text (pure: text in, text and findings out; the caller does the I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import RewriteError
from bot.reference import parse_reference
from bot.rewrite.policy import Decision, Policy, Status
from bot.rewrite.sites import FileKind, HelmImage, ImageSite, Site, detect_kind, find_sites
from bot.rewrite.source import Edit, Located, apply_edits, edit_problem, load_json, load_yaml, position, value_start

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class Finding:
    """One image found in a file, where it was written, and what happens to it."""

    line: int
    col: int
    decision: Decision
    problem: str = ""  # set when the image should be rewritten but cannot be edited in place

    @property
    def rewritten(self) -> bool:
        return self.decision.rewrites and not self.problem

    def describe(self, path: str) -> str:
        where = f"{path}:{self.line}:{self.col}"
        decision = self.decision
        if self.rewritten:
            return f"{where}: {decision.image} -> {decision.target}"
        if self.problem:
            return f"{where}: {decision.image} kept (cannot edit in place): {self.problem}"
        return f"{where}: {decision.image} kept ({decision.status.value}): {decision.reason}"


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    kind: FileKind
    text: str
    new_text: str
    findings: tuple[Finding, ...]

    @property
    def changed(self) -> bool:
        return self.new_text != self.text


def _load(body: str, path: str) -> list[Any]:
    """JSON for ``.json`` files, YAML for ``.yaml``/``.yml``; other names (stdin) by their first character."""
    if path.endswith(".json"):
        return load_json(body, path)
    if not path.endswith((".yaml", ".yml")) and body.lstrip()[:1] in ("{", "["):
        try:
            return load_json(body, path)
        except RewriteError:
            pass  # a YAML flow mapping, or broken JSON that the YAML parser will report
    return load_yaml(body, path)


def rewrite_text(text: str, path: str, policy: Policy, kind: FileKind | None = None) -> FileResult:
    """Rewrite every image of ``text`` that ``policy`` allows; report the others with the reason."""
    bom = _BOM if text.startswith(_BOM) else ""
    body = text[len(bom) :]
    docs = _load(body, path)
    kind = kind or detect_kind(docs)
    edits, findings = plan(body, docs, kind, policy)
    return FileResult(path, kind, text, bom + apply_edits(body, edits), tuple(findings))


def plan(text: str, docs: Sequence[Any], kind: FileKind, policy: Policy) -> tuple[list[Edit], list[Finding]]:
    """The edits to make and a finding for every image site, in file order (pure)."""
    edits: list[Edit] = []
    findings: dict[tuple[int, str], Finding] = {}
    for doc in docs:
        for site in find_sites(kind, doc):
            anchor, decision, site_edits = _site_edits(site, policy)
            problem = ""
            if decision.rewrites:
                problems = [edit_problem(text, edit.value) for edit in site_edits]
                problem = next((item for item in problems if item), "")
                if not problem:
                    edits.extend(site_edits)
            start = value_start(text, anchor) if isinstance(anchor, Located) else 0
            line, col = position(text, start)
            # An anchored value reached through several aliases is one finding, at the anchor.
            findings.setdefault((start, decision.image), Finding(line, col, decision, problem))
    return edits, [findings[key] for key in sorted(findings)]


def _site_edits(site: Site, policy: Policy) -> tuple[str, Decision, list[Edit]]:
    if isinstance(site, ImageSite):
        decision = policy.decide(site.value)
        if not decision.rewrites or not isinstance(site.value, Located):
            return site.value, decision, []
        assert decision.target is not None
        return site.value, decision, [Edit(site.value, decision.target)]
    return _helm_edits(site, policy)


def _helm_edits(site: HelmImage, policy: Policy) -> tuple[str, Decision, list[Edit]]:
    if site.tag is None and site.digest is None:
        decision = Decision(
            site.image,
            Status.UNRESOLVED,
            reason="no tag in the values, so the chart's appVersion decides; write image.tag to rewrite it",
        )
        return site.repository, decision, []
    decision = policy.decide(site.image)
    if not decision.rewrites or decision.target is None:
        return site.repository, decision, []
    target = parse_reference(decision.target)
    edits: list[Edit] = []
    if isinstance(site.registry, Located):
        edits.append(Edit(site.registry, target.registry or ""))
        new_repository = target.path
    else:
        new_repository = target.name
    if isinstance(site.repository, Located):
        edits.append(Edit(site.repository, new_repository))
    return site.repository, decision, edits
