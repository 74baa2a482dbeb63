"""``kustomize FILE...``: print a kustomization ``images:`` block that points the files' images at the mirror."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from bot.commands._options import config_from_args
from bot.commands.rewrite import add_policy_options, build_policy, read_text
from bot.errors import InvalidReference, UsageError
from bot.github import actions
from bot.reference import parse_reference
from bot.rewrite.files import Finding, rewrite_text
from bot.rewrite.policy import Policy, find_mirrored
from bot.rewrite.sites import FileKind


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "kustomize",
        help="print a kustomization images: block that points images at the mirror",
        description="Print an images: block for kustomization.yaml (name, newName, and newTag or digest) "
        "covering the images of the given files, ready to paste. kustomize matches images by name, so a "
        "name used with a mirrored and an unmirrored tag gets no entry (it would break the unmirrored one); "
        "such names and images left alone are listed on stderr.",
    )
    add_policy_options(parser)
    parser.add_argument(
        "--pin-digest",
        action="store_true",
        help="write the mirrored digest instead of the tag, so the kustomization pins exact images",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One kustomize ``images:`` entry."""

    name: str
    new_name: str
    new_tag: str | None = None
    digest: str | None = None
    note: str = ""

    def yaml(self) -> str:
        lines = [f"- name: {self.name}", f"  newName: {self.new_name}"]
        if self.digest is not None:
            lines.append(f'  digest: "{self.digest}"')
        elif self.new_tag is not None:
            lines.append(f'  newTag: "{self.new_tag}"')
        if self.note:
            lines[0] += f"  # {self.note}"
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Located:
    path: str
    finding: Finding


def entries(found: Iterable[Located], policy: Policy, *, pin_digest: bool) -> tuple[list[ImageEntry], list[str]]:
    """The ``images:`` entries for the images found, and why other names got none (pure)."""
    by_name: dict[str, list[Located]] = {}
    for item in found:
        decision = item.finding.decision
        try:
            name = parse_reference(decision.image).name
        except InvalidReference:
            name = decision.image
        by_name.setdefault(name, []).append(item)
    result: list[ImageEntry] = []
    notes: list[str] = []
    for name in sorted(by_name):
        uses = by_name[name]
        kept = [use for use in uses if not use.finding.decision.rewrites]
        if kept:
            for use in kept:
                notes.append(use.finding.describe(use.path))
            if len(kept) < len(uses):
                notes.append(
                    f"{name}: no entry, because kustomize matches by name and some tags of it are not mirrored; "
                    "request them or use 'python -m bot rewrite'"
                )
            continue
        refs = {parse_reference(use.finding.decision.image) for use in uses}
        targets = {parse_reference(use.finding.decision.target or "") for use in uses}
        new_name = next(iter(targets)).name
        if len(refs) > 1:
            tags = ", ".join(sorted(str(ref.tag or ref.digest or "latest") for ref in refs))
            result.append(ImageEntry(name, new_name, note=f"tags kept as written: {tags}"))
            continue
        ref = next(iter(refs))
        digest = ref.digest
        if digest is None and pin_digest:
            entry = find_mirrored(policy.index, ref)
            digest = entry.ref.digest if entry is not None else None
        result.append(ImageEntry(name, new_name, ref.effective_tag, digest))
    return result, notes


def run(args: argparse.Namespace) -> int:
    if args.pin_digest and args.mode.value != "mirrored":
        raise UsageError("--pin-digest needs the mirrored list; it cannot be combined with --all-mappable")
    policy = build_policy(config_from_args(args), args.mirrored, args.mode)
    kind = FileKind(args.kind) if args.kind else None
    found: list[Located] = []
    for name in args.files:
        result = rewrite_text(read_text(name), name, policy, kind)
        found.extend(Located(name, finding) for finding in result.findings)
    images, notes = entries(found, policy, pin_digest=args.pin_digest)
    for note in notes:
        print(actions.safe_line(note), file=sys.stderr)
    if not images:
        print("no image can point at the mirror; nothing to add to images:", file=sys.stderr)
        return 0
    sys.stdout.write("images:\n" + "".join(image.yaml() for image in images))
    return 0
