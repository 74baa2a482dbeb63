"""Command line: ``python -m bot <command>``, or the console command ``image-mirror <command>``.

Each module in :mod:`bot.commands` adds one sub-command through its ``register`` function. This is the one
place that catches :class:`~bot.errors.BotError` and turns it into a readable message and an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import bot.commands
from bot import __version__, debug
from bot.cancel import exit_if_signalled, forget_signal
from bot.errors import BotError
from bot.github import actions
from bot.redact import announce_to, redact
from bot.settings import DEBUG_ENV, Settings

DEBUG_HELP = f"print the traceback of a failure and a log of requests (secrets removed); also {DEBUG_ENV}=1"


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
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _command_modules(argv):
        module: _CommandModule = importlib.import_module(f"bot.commands.{name}")
        module.register(subparsers)
    for sub in subparsers.choices.values():  # also after the command: `image-mirror sync --debug`
        sub.add_argument("--debug", dest="debug_here", action="store_true", help=DEBUG_HELP)
    return parser


def _mask(secret: str) -> None:
    actions.mask(secret, sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    # The environment is read here, once; commands pass what they need of it down.
    args.settings = Settings.from_environ(os.environ)
    handler: Handler = args.handler
    forget_signal()
    # In Actions every secret the run learns (a password, its base64 form, a minted token) is masked at once.
    announce_to(_mask if args.settings.in_actions else None)
    log = debug.enable() if debug.wanted(args.debug or args.debug_here, args.settings) else None
    try:
        status = handler(args)
    except BotError as exc:
        if log is not None:
            print(debug.traceback_of(exc), file=sys.stderr, end="")
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        status = exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one sentence by default, the traceback with --debug
        if log is not None:
            print(debug.traceback_of(exc), file=sys.stderr, end="")
        hint = "" if log is not None else "; run again with --debug for the traceback"
        print(f"error: internal error ({type(exc).__name__}: {debug.redact(str(exc))}){hint}", file=sys.stderr)
        status = 1
    finally:
        if log is not None:
            debug.disable(log)
    # A run a signal cancelled has recorded what it verified; transfers it abandoned may still hold threads.
    exit_if_signalled(status)
    return status
