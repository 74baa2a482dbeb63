"""``rewrite FILE...``: point the images of manifests at the mirror, editing nothing else."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.commands._options import add_config_options, config_from_args
from bot.config import Config
from bot.errors import ListFileError, RewriteError, UsageError
from bot.github import actions
from bot.lists import MIRRORED_LIST, ListKind, MirroredIndex, read_list, write_atomically
from bot.rewrite.files import FileResult, rewrite_text
from bot.rewrite.policy import Mode, Policy
from bot.rewrite.sites import FileKind
from bot.rules import Mapper
from bot.units import plural

STDIN = "-"


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``rewrite`` and ``kustomize``."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="manifest, values, compose or task file; - is stdin")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--mirrored-only",
        dest="mode",
        action="store_const",
        const=Mode.MIRRORED,
        default=Mode.MIRRORED,
        help="rewrite only images listed in the mirrored list (the default)",
    )
    which.add_argument(
        "--all-mappable",
        dest="mode",
        action="store_const",
        const=Mode.MAPPABLE,
        help="rewrite every image a rule covers, mirrored or not",
    )
    parser.add_argument(
        "--mirrored",
        type=Path,
        default=MIRRORED_LIST,
        metavar="FILE",
        help="the mirrored list (default: %(default)s)",
    )
    parser.add_argument(
        "--type",
        dest="kind",
        choices=[kind.value for kind in FileKind],
        default=None,
        help="file type, when guessing from the content is not enough",
    )
    add_config_options(parser)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rewrite",
        help="point the images of Kubernetes, Helm, compose or ECS files at the mirror",
        description="Rewrite image references to their mirror path: Kubernetes workloads (containers, "
        "initContainers, ephemeralContainers, List objects, several documents), Helm values (image strings "
        "and registry/repository/tag maps), docker compose services and ECS task definitions. Only the "
        "image values change; comments, quoting, order and every other line stay as written. Images left "
        "alone are listed on stderr with the reason. The result goes to stdout unless --in-place or --check.",
    )
    add_policy_options(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--in-place", action="store_true", help="write the result back into each file")
    output.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file would change")
    parser.set_defaults(handler=run)


def build_policy(config: Config, mirrored: Path, mode: Mode) -> Policy:
    index = MirroredIndex(())
    if mode is Mode.MIRRORED:
        try:
            listed = read_list(mirrored, ListKind.MIRRORED)
        except ListFileError as exc:
            raise UsageError(
                f"{exc}; pass the mirrored list with --mirrored FILE, or --all-mappable to rewrite every image "
                "a rule covers"
            ) from None
        for problem in listed.problems:
            print(f"warning: {problem} (line ignored)", file=sys.stderr)
        index = MirroredIndex(listed.entries)
    return Policy(Mapper(config), index, mode)


def read_text(name: str) -> str:
    if name == STDIN:
        return sys.stdin.read()
    path = Path(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RewriteError(f"{name}: cannot read the file: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RewriteError(f"{name}: byte {exc.start} is not UTF-8; save the file as UTF-8") from exc


def rewrite_files(args: argparse.Namespace) -> list[FileResult]:
    if args.files.count(STDIN) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    policy = build_policy(config_from_args(args, needs_target="rewrite"), args.mirrored, args.mode)
    kind = FileKind(args.kind) if args.kind else None
    return [rewrite_text(read_text(name), name, policy, kind) for name in args.files]


def run(args: argparse.Namespace) -> int:
    if args.in_place and STDIN in args.files:
        raise UsageError("--in-place cannot write to stdin; give file names")
    results = rewrite_files(args)
    if not args.in_place and not args.check and len(results) > 1 and any(r.kind is FileKind.ECS for r in results):
        raise UsageError("several JSON files cannot share stdout; use --in-place or --check")
    changed = 0
    for result in results:
        for finding in result.findings:
            # File content is data: printed so that it can never read as a workflow command in CI logs.
            print(actions.safe_line(finding.describe(result.path)), file=sys.stderr)
        changed += result.changed
        if args.in_place:
            if result.changed:
                write_atomically(Path(result.path), result.new_text.encode("utf-8"))
        elif not args.check:
            _print_document(result.new_text, first=result is results[0])
    total = sum(len(result.findings) for result in results)
    rewritten = sum(finding.rewritten for result in results for finding in result.findings)
    verb = "would change" if args.check else "changed"
    print(
        f"{plural(len(results), 'file')}, {changed} {verb}: {rewritten} of {plural(total, 'image')} rewritten",
        file=sys.stderr,
    )
    return 1 if args.check and changed else 0


def _print_document(text: str, *, first: bool) -> None:
    if not first:
        sys.stdout.write("---\n")  # several YAML files on stdout form one stream of documents
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
