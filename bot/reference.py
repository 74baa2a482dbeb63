"""Image reference grammar: parse, validate and format ``[host[:port]/]path[:tag][@digest]`` (pure).

Follows the distribution reference grammar. The reference keeps what was written (``nginx`` stays ``nginx``,
``library/`` is neither added nor removed) because the original service's target paths depend on it, while
:meth:`Reference.identity` is the same for every spelling of one upstream image (``nginx``,
``docker.io/library/nginx:latest``), which is what duplicate detection needs.

Every rejection is an :class:`~bot.errors.InvalidReference` with a 1-based column and a reason that says how
to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def fold_host(host: str) -> str:
    """``host`` lowercase, with every Docker Hub alias folded into ``docker.io``: the one spelling of a registry."""
    host = host.lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


MAX_NAME_LENGTH = 255
MAX_TAG_LENGTH = 128

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]*", re.ASCII)
_DOMAIN_COMPONENT = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?")
_IPV6 = re.compile(r"\[[0-9a-fA-F:.]+\]")
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_HEX = re.compile(r"[0-9a-f]+")
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}
_PLATFORM = re.compile(
    r"(?:linux|windows|darwin|freebsd)/(?:amd64|arm64|arm|386|ppc64le|s390x|riscv64|mips64le)(?:/v[0-9]+)?"
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed image reference.

    ``registry`` is the host as written (``None`` when none was written, which means Docker Hub), ``path``
    the repository path as written. ``tag`` and ``digest`` are ``None`` when absent.
    """

    registry: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def host(self) -> str:
        """The registry host, lowercase, with every Docker Hub alias folded into ``docker.io``."""
        return DOCKER_HUB if self.registry is None else fold_host(self.registry)

    @property
    def is_docker_hub(self) -> bool:
        return self.host == DOCKER_HUB

    @property
    def repository(self) -> str:
        """The repository name as the registry API knows it (Docker Hub's official images live in ``library/``)."""
        if self.is_docker_hub and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    @property
    def effective_tag(self) -> str | None:
        """The tag a client would pull: the written tag, or ``latest`` when neither tag nor digest is given."""
        if self.tag is None and self.digest is None:
            return "latest"
        return self.tag

    @property
    def name(self) -> str:
        """``[host/]path`` as written, without tag or digest."""
        return self.path if self.registry is None else f"{self.registry}/{self.path}"

    @property
    def canonical_name(self) -> str:
        """``host/repository``: one spelling per upstream repository."""
        return f"{self.host}/{self.repository}"

    def identity(self) -> tuple[str, str, str | None, str | None]:
        """Equal for every spelling of the same upstream image (used to find duplicates)."""
        return (self.host, self.repository, self.effective_tag, self.digest)

    def canonical(self) -> str:
        """The fully spelled-out form, e.g. ``docker.io/library/nginx:latest``."""
        return format_reference(self.canonical_name, self.effective_tag, self.digest)

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.path, tag, self.digest)

    def with_digest(self, digest: str | None) -> Reference:
        return Reference(self.registry, self.path, self.tag, digest)

    def __str__(self) -> str:
        return format_reference(self.name, self.tag, self.digest)


def format_reference(name: str, tag: str | None, digest: str | None) -> str:
    text = name
    if tag is not None:
        text += f":{tag}"
    if digest is not None:
        text += f"@{digest}"
    return text


# The common case in one regular expression; anything it does not accept goes through the checks below,
# which find the column of the first problem. Both must accept exactly the same references.
_FAST = re.compile(
    r"(?:(?P<host>(?:localhost|\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::(?P<port>[0-9]{1,5}))?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?",
    re.ASCII,
)


def parse_reference(text: str) -> Reference:
    """Parse one image reference; raise :class:`InvalidReference` naming the column of the first problem."""
    match = _FAST.fullmatch(text)
    if match is not None:
        ref = _from_match(match)
        if ref is not None:
            return ref
    return _parse_checked(text)


def _from_match(match: re.Match[str]) -> Reference | None:
    host, port, path, tag, digest = match.group("host", "port", "path", "tag", "digest")
    if host is None:
        first, slash, _ = path.partition("/")
        if slash and ("." in first or first == "localhost"):
            return None  # the first component is a host after all: let the checks judge it
    elif port is None and not _looks_like_host(host):
        # "library/nginx": what the expression took for a host is the first path component
        if not _PATH_COMPONENT.fullmatch(host):
            return None
        path, host = f"{host}/{path}", None
    if port is not None and not 0 < int(port) < 65536:
        return None
    registry = None if host is None else match.group(0)[: match.end("port" if port is not None else "host")]
    name = path if registry is None else f"{registry}/{path}"
    if len(name) > MAX_NAME_LENGTH:
        return None
    if registry is None and tag is None and digest is None and _PLATFORM.fullmatch(path):
        return None
    return Reference(registry, path, tag, digest)


def _parse_checked(text: str) -> Reference:
    _check_characters(text)
    if "://" in text:
        return _fail(text, text.index("://") + 1, "a URL is not an image reference; write host/repository:tag")
    at = text.find("@")
    if (
        at >= 0
        and "/" not in text[:at]
        and "/" in text[at:]
        and _looks_like_host(text[at + 1 :].split("/", maxsplit=1)[0])
    ):
        # A digest follows the path and never holds '/': this is "user[:password]@host/...".
        return _fail(
            text,
            1,
            "credentials ('user:password@') are not part of an image reference; remove them and write "
            "host/repository:tag",
        )

    name_part, digest, digest_col = _split_digest(text)
    name, tag, tag_col = _split_tag(name_part)
    if not name:
        return _fail(text, 1, "the repository name is missing")

    registry, path, path_col = _split_registry(text, name)
    _check_path(text, path, path_col)
    if len(name) > MAX_NAME_LENGTH:
        return _fail(
            text,
            MAX_NAME_LENGTH + 1,
            f"the name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed",
        )
    if tag is not None:
        _check_tag(text, tag, tag_col)
    if digest is not None:
        _check_digest(text, digest, digest_col)
    if registry is None and tag is None and digest is None and _PLATFORM.fullmatch(path):
        return _fail(text, 1, f"{_quoted(path)} is a platform, not an image; write the image reference instead")
    return Reference(registry, path, tag, digest)


def _quoted(value: str, limit: int = 60) -> str:
    """``value`` quoted for a message; a long one is cut, so a message never grows with the input."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[: limit - 10]!r}... ({len(value)} characters)"


def _fail(text: str, column: int, reason: str) -> Reference:
    raise InvalidReference(text, column, reason)


def _check_characters(text: str) -> None:
    if not text.strip():
        _fail(text, 1, "the reference is empty")
    for index, char in enumerate(text):
        column = index + 1
        if char in " \t":
            _fail(text, column, "whitespace inside a reference; a line holds one image reference, start notes with '#'")
        if ord(char) < 0x20 or ord(char) == 0x7F:
            _fail(text, column, f"control character U+{ord(char):04X} is not allowed")
        if not char.isascii():
            _fail(
                text,
                column,
                f"non-ASCII character {char!r} (U+{ord(char):04X}); references are ASCII only "
                "(a look-alike letter typed by mistake?)",
            )


def _split_digest(text: str) -> tuple[str, str | None, int]:
    at = text.find("@")
    if at < 0:
        return text, None, 0
    second = text.find("@", at + 1)
    if second >= 0:
        _fail(text, second + 1, "more than one '@'; a reference has at most one digest")
    return text[:at], text[at + 1 :], at + 2


def _split_tag(name_part: str) -> tuple[str, str | None, int]:
    colon = name_part.rfind(":")
    if colon < 0 or "/" in name_part[colon:]:
        return name_part, None, 0
    return name_part[:colon], name_part[colon + 1 :], colon + 2


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def _split_registry(text: str, name: str) -> tuple[str | None, str, int]:
    slash = name.find("/")
    # "../x" is a file path, not the host "..": let the path check say so.
    if slash < 0 or not _looks_like_host(name[:slash]) or not name[:slash].strip("."):
        return None, name, 1
    registry = name[:slash]
    _check_host(text, registry)
    return registry, name[slash + 1 :], slash + 2


def _check_host(text: str, registry: str) -> None:
    host, port = registry, None
    if registry.startswith("["):
        end = registry.find("]")
        if end < 0 or not _IPV6.fullmatch(registry[: end + 1]):
            _fail(text, 1, f"{_quoted(registry)} is not a valid IPv6 registry address; write it as [address]:port")
        host, rest = registry[: end + 1], registry[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                _fail(text, end + 2, "only ':port' may follow an IPv6 address")
            port = rest[1:]
    elif ":" in registry:
        host, port = registry.split(":", 1)
        if ":" in port:
            _fail(text, len(host) + 2 + port.index(":"), "a registry host has at most one ':port'")
        if not host.startswith("["):
            _check_domain(text, host)
    else:
        _check_domain(text, host)
    # At most five ASCII digits: int() of thousands of digits raises, and "²" is a digit to isdigit().
    if port is not None and not (len(port) <= 5 and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        _fail(text, len(host) + 2, f"{_quoted(port)} is not a port number (1 to 65535)")


def _check_domain(text: str, host: str) -> None:
    column = 1
    for component in host.split("."):
        if not _DOMAIN_COMPONENT.fullmatch(component):
            bad = _first_mismatch(component, r"[a-zA-Z0-9-]")
            where = column + (bad if bad is not None else 0)
            what = (
                "an empty host name component"
                if not component
                else f"host name component {_quoted(component)} must be letters, digits and inner '-'"
            )
            _fail(text, where, what)
        column += len(component) + 1


def _first_mismatch(value: str, allowed: str) -> int | None:
    pattern = re.compile(allowed)
    for index, char in enumerate(value):
        if not pattern.fullmatch(char):
            return index
    return None


def _check_path(text: str, path: str, path_col: int) -> None:
    if not path:
        _fail(text, path_col, "the repository path after the registry host is missing")
    column = path_col
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            _fail(text, *_path_problem(component, column))
        column += len(component) + 1


def _path_problem(component: str, column: int) -> tuple[int, str]:
    if not component:
        return column, "empty path component ('//' or a '/' at the start or end)"
    if not component.strip("."):
        return column, f"{_quoted(component)} is not allowed: an image reference names a repository, not a file path"
    for index, char in enumerate(component):
        if char.isupper():
            return (
                column + index,
                f"uppercase letter {char!r} in the repository name; repository names are lowercase "
                "(only tags may hold uppercase)",
            )
        if not (char.islower() or char.isdigit() or char in "._-"):
            hint = "; a comment needs whitespace before '#'" if char == "#" else ""
            return column + index, f"character {char!r} is not allowed in a repository name{hint}"
    if not component[0].isalnum():
        return column, f"path component {_quoted(component)} must start with a lowercase letter or digit"
    if not component[-1].isalnum():
        end = column + len(component) - 1
        return end, f"path component {_quoted(component)} must end with a lowercase letter or digit"
    separator = re.search(r"[._-]{2,}", component)
    assert separator is not None  # every other way to fail the pattern was ruled out above
    return (
        column + separator.start(),
        f"separator {_quoted(separator.group())} is not allowed; use '.', '_', '__' or '-'",
    )


def _check_tag(text: str, tag: str, tag_col: int) -> None:
    if not tag:
        _fail(text, tag_col - 1, "':' is not followed by a tag")
    if len(tag) > MAX_TAG_LENGTH:
        _fail(text, tag_col + MAX_TAG_LENGTH, f"the tag is {len(tag)} characters long; at most {MAX_TAG_LENGTH}")
    if not _TAG.fullmatch(tag):
        if tag[0] in ".-":
            _fail(text, tag_col, f"a tag must start with a letter, digit or '_', not {tag[0]!r}")
        bad = _first_mismatch(tag, r"[\w.-]") or 0
        hint = "; a comment needs whitespace before '#'" if tag[bad] == "#" else ""
        _fail(text, tag_col + bad, f"character {tag[bad]!r} is not allowed in a tag{hint}")


def _check_digest(text: str, digest: str, digest_col: int) -> None:
    algorithm, sep, encoded = digest.partition(":")
    if not sep:
        _fail(text, digest_col, "a digest is 'algorithm:hex', e.g. sha256:<64 hex digits>")
    if not _ALGORITHM.fullmatch(algorithm):
        _fail(text, digest_col, f"{_quoted(algorithm)} is not a digest algorithm (e.g. sha256)")
    hex_col = digest_col + len(algorithm) + 1
    if not encoded:
        _fail(text, hex_col - 1, "the digest has no hex digits after the ':'")
    if not _HEX.fullmatch(encoded):
        bad = _first_mismatch(encoded, r"[0-9a-f]") or 0
        what = "uppercase hex digit" if encoded[bad] in "ABCDEF" else "character"
        _fail(text, hex_col + bad, f"{what} {encoded[bad]!r} in the digest; digests are lowercase hex")
    expected = _DIGEST_LENGTHS.get(algorithm)
    if expected is not None and len(encoded) != expected:
        state = "truncated" if len(encoded) < expected else "too long"
        _fail(
            text,
            hex_col + min(len(encoded), expected),
            f"{algorithm} digest is {state}: {len(encoded)} hex digits, it needs {expected}",
        )
    if expected is None and len(encoded) < 32:
        _fail(text, hex_col, f"{_quoted(algorithm)} digest has {len(encoded)} hex digits; at least 32 are needed")


def is_digest(value: str) -> bool:
    """True for a well-formed ``algorithm:hex`` digest."""
    try:
        _check_digest(value, value, 1)
    except InvalidReference:
        return False
    return True


def is_tag(value: str) -> bool:
    """True for a tag the reference grammar allows (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``)."""
    return len(value) <= MAX_TAG_LENGTH and _TAG.fullmatch(value) is not None


def split_location(text: str) -> tuple[str, str]:
    """Split ``host[:port][/path/prefix]`` (a registry, optionally with a path prefix) into host and prefix.

    Raises :class:`InvalidReference` when the host is not a registry host or the prefix not a repository path.
    """
    host, _, prefix = text.strip("/").partition("/")
    if not host or not _looks_like_host(host):
        _fail(text, 1, f"{_quoted(host)} is not a registry host (a domain with a dot, host:port, localhost or [IPv6])")
    _check_host(text, host)
    if prefix:
        _check_path(text, prefix, len(host) + 2)
    return host, prefix


def is_repository_path(text: str) -> bool:
    """True for ``component[/component...]`` as the reference grammar allows in a repository name."""
    return bool(text) and all(_PATH_COMPONENT.fullmatch(part) for part in text.split("/"))
