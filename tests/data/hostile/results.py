"""Tampered shard results files, as data: a row each, where it goes, and a part of the refusal it must get.

A results file travels between jobs as an artifact; ``merge-results`` checks it like any other input.
"""

from __future__ import annotations

DIGEST = "sha256:" + "0123456789abcdef" * 4

# (section, row, words of the refusal)
TAMPERED_ROWS: tuple[tuple[str, object, str], ...] = (
    ("mirrored", f"169.254.169.254/meta:1@{DIGEST}", "it is a link-local address"),
    ("mirrored", f"registry.evil.example/app:1@{DIGEST}", "registry registry.evil.example is not allowed"),
    ("mirrored", f"localhost:5000/app:1@{DIGEST}", "this machine (localhost)"),
    ("mirrored", "docker.io/library/nginx:1.25", "is not pinned"),
    ("mirrored", "docker.io/library/nginx:../../x@" + DIGEST, "is not an image reference"),
    ("mirrored", "docker.io/library/nginx:1@sha256:abc", "is not an image reference"),
    ("mirrored", 42, "must be a string"),
    ("rows", {"image": "nginx:1", "target": "t", "bytes_moved": -5}, "is not a whole number of bytes"),
    ("rows", {"image": "nginx:1", "target": "t", "bytes_moved": "12"}, "is not a whole number of bytes"),
    ("rows", {"image": "nginx:1", "target": "t", "bytes_moved": True}, "is not a whole number of bytes"),
    ("rows", {"image": "nginx:1", "target": "t", "bytes_moved": 1.5}, "is not a whole number of bytes"),
    ("rows", {"image": 7, "target": "t"}, "'image' must be a string"),
    ("failures", {"image": "nginx:1"}, "must be an object with the strings 'image' and 'reason'"),
)
