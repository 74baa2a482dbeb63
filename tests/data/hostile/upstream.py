"""Hostile registry answers, as data: what a registry that a rule allows (or a proxy in between) could send back.

Tags, digests and links from a server's answer end up in request paths; echoed credentials end up in error
text. Each entry here is something the bot must refuse or clean before use, and the tests that use them
(tests/integration/test_hostile_upstream.py) assert that nothing was requested with it and nothing leaked.
"""

from __future__ import annotations

DIGEST = "sha256:" + "0123456789abcdef" * 4

# Tags a tag list may hold that the reference grammar does not allow: each would steer a request path.
HOSTILE_TAGS: tuple[str, ...] = (
    "../../../../victim/app/manifests/latest",
    "/",
    "..",
    ".",
    "%2e%2e",
    "%2F..%2Fvictim",
    "a;b",
    f"x@{DIGEST}",
    "@sha256",
    "1.0\r\nX-Injected: yes",
    "1.0\n",
    "a/b",
    "",
    "a" * 129,
    ".hidden",
    "-dash",
    "tag?n=1",
    "tag#frag",
    "ta g",
    "t\u00e1g",
    "t\x00",
    "::add-mask::x",
    "$(id)",
    "<img src=x>",
)

# Pagination links that leave the repository's tag list.
HOSTILE_NEXT_LINKS: tuple[str, ...] = (
    '</v2/victim/app/tags/list?last=a>; rel="next"',
    '</v2/team/app/manifests/latest>; rel="next"',
    '<http://169.254.169.254/v2/team/app/tags/list>; rel="next"',
)

# Error texts a registry or a proxy may send back with the request's credentials in them (the password is
# "s3cr3t-pw" of user "robot"; cm9ib3Q6czNjcjN0LXB3 is their base64).
ECHOED_CREDENTIALS: tuple[str, ...] = (
    "Forbidden (Basic cm9ib3Q6czNjcjN0LXB3)",
    "Forbidden (basic cm9ib3Q6czNjcjN0LXB3)",
    '{"errors":[{"code":"DENIED","message":"Authorization: Basic cm9ib3Q6czNjcjN0LXB3"}]}',
    "invalid token Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "proxy said: authorization=Bearer%20dG9rZW4tc2VjcmV0",
    "ECR: Authorization: Basic QVdTOmV5SnBiM1JsYzNRaU9pSjBjblZsSW4w and AWS:c2VjcmV0",
    "login failed for robot with password s3cr3t-pw",
    'upstream rejected {"password": "s3cr3t-pw", "token": "dG9rZW4tc2VjcmV0"}',
    "https://robot:s3cr3t-pw@registry.example/v2/ refused",
    "auth header cm9ib3Q6czNjcjN0LXB3 is not valid",
)
