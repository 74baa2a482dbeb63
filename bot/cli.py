"""Command line: ``python -m bot <command>``, or the console command ``image-mirror <command>``.

Each module in :mod:`bot.commands` adds one sub-command through its ``register`` function. This is the one
place that catches :class:`~bot.errors.BotError` and turns it into a readable message and an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import bot.commands
from bot import __version__
from bot.cancel import exit_if_signalled, forget_signal
from bot.errors import BotError


class _CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


Handler = Callable[[argparse.Namespace], int]


def _command_modules(argv: Sequence[str] | None) -> list[str]:
    """Every command module, or only the one ``argv`` names: start-up then imports just what it needs."""
    # A module whose name starts with "_" holds helpers of several commands, not a command.
    names = sorted(info.name for info in pkgutil.iter_modules(bot.commands.__path__) if not info.name.startswith("_"))
    words = [word for word in (sys.argv[1:] if argv is None else argv) if not word.startswith("-")]
    if words and words[0].replace("-", "_") in names:
        return [words[0].replace("-", "_")]
    return names


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        # The console script says its own name; `python -m bot` otherwise.
        prog="image-mirror" if Path(sys.argv[0]).name == "image-mirror" else "python -m bot",
        description="Mirror public container images into a private registry, driven by list files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _command_modules(argv):
        module: _CommandModule = importlib.import_module(f"bot.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    forget_signal()
    try:
        status = handler(args)
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    # A run a signal cancelled has recorded what it verified; transfers it abandoned may still hold threads.
    exit_if_signalled(status)
    return status
