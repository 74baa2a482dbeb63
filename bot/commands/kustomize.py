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
from bot.reference import Reference, parse_reference
from bot.rewrite.files import Finding, rewrite_text
from bot.rewrite.kustomize import ImageEntry, Use, image_entries, images_block
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
class Located:
    path: str
    finding: Finding


def entries(found: Iterable[Located], policy: Policy, *, pin_digest: bool) -> tuple[list[ImageEntry], list[str]]:
    """The ``images:`` entries for the images found, and why other names got none (pure)."""
    uses: list[Use] = []
    notes: list[str] = []
    for item in found:
        decision = item.finding.decision
        if not decision.rewrites:
            notes.append(item.finding.describe(item.path))
        try:
            ref = parse_reference(decision.image)
        except InvalidReference:
            continue  # kept as written, and no name kustomize could match
        new_name = parse_reference(decision.target or "").name if decision.rewrites else None
        uses.append(Use(ref, new_name))

    def pinned(ref: Reference) -> str | None:
        entry = find_mirrored(policy.index, ref)
        return entry.ref.digest if entry is not None else None

    images, blocked = image_entries(uses, pinned if pin_digest else None)
    rewritten = {use.ref.name for use in uses if use.new_name is not None}
    notes.extend(
        f"{name}: no entry, because kustomize matches by name and some tags of it are not mirrored; "
        "request them or use 'python -m bot rewrite'"
        for name in blocked
        if name in rewritten
    )
    return images, notes


def run(args: argparse.Namespace) -> int:
    if args.pin_digest and args.mode.value != "mirrored":
        raise UsageError("--pin-digest needs the mirrored list; it cannot be combined with --all-mappable")
    policy = build_policy(config_from_args(args, needs_target="kustomize"), args.mirrored, args.mode)
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
    sys.stdout.write(images_block(images))
    return 0
