"""How the GitHub Actions runner reads a log line as a workflow command, to check what the bot prints.

A port of ``ActionCommand.TryParseV2`` and the legacy ``ActionCommand.TryParse`` of actions/runner
(src/Runner.Common/ActionCommand.cs), which ``ActionCommandManager.TryProcessCommand`` tries in that order on
every line of stdout and stderr: ``::name props::data`` after leading whitespace, or ``##[name props]data``
anywhere in the line, for any registered command name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REGISTERED = frozenset(
    {
        "set-env",
        "set-output",
        "save-state",
        "add-mask",
        "add-path",
        "add-matcher",
        "remove-matcher",
        "debug",
        "warning",
        "error",
        "notice",
        "group",
        "endgroup",
        "echo",
        "stop-commands",
        "internal-set-repo-path",
    }
)
ANNOTATIONS = frozenset({"error", "warning", "notice"})

_DATA = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))
_LEGACY = (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"), ("%25", "%"))


@dataclass(frozen=True)
class Command:
    name: str
    data: str
    properties: dict[str, str] = field(default_factory=dict)
    legacy: bool = False


def _unescape(value: str, mappings: tuple[tuple[str, str], ...]) -> str:
    for replacement, token in mappings:
        value = value.replace(replacement, token)
    return value


def _v2(line: str) -> Command | None:
    message = line.lstrip()  # .NET TrimStart(); Python's whitespace set is a superset
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    name, space, props = info.partition(" ")
    if name not in REGISTERED:
        return None
    properties = {}
    if space:
        for item in props.strip().split(","):
            key, equals, value = item.partition("=")
            if equals and key and value:
                properties[key] = _unescape(value, _PROPERTY)
    return Command(name, _unescape(message[end + 2 :], _DATA), properties)


def _legacy(line: str) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    close = line.find("]", start)
    if close < 0:
        return None
    info = line[start + 3 : close]
    name, space, props = info.partition(" ")
    if name not in REGISTERED:
        return None
    properties = {}
    if space:
        for item in props.split(";"):
            key, equals, value = item.partition("=")
            if equals and key and value:
                properties[key] = _unescape(value, _LEGACY)
    return Command(name, _unescape(line[close + 1 :], _LEGACY), properties, legacy=True)


def parse(line: str) -> Command | None:
    """The command the runner would run for ``line``, or ``None`` for plain log text."""
    return _v2(line) or _legacy(line)


def commands(output: str) -> list[Command]:
    """Every command in a captured stream (the runner splits lines at LF and CR)."""
    found = []
    for line in output.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        command = parse(line)
        if command is not None:
            found.append(command)
    return found


def assert_only_annotations(output: str) -> list[Command]:
    """Every command in ``output`` is an annotation in the current syntax (the bot prints nothing else)."""
    found = commands(output)
    for command in found:
        assert command.name in ANNOTATIONS and not command.legacy, command
    assert "\r" not in output and "\x00" not in output
    assert "Traceback" not in output
    return found
