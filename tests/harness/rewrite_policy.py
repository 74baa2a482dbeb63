"""A rewrite policy of the default config over a small sample mirrored list."""

from __future__ import annotations

from bot.config import Config
from bot.lists import ListKind, MirroredIndex, parse_list
from bot.rewrite.policy import Mode, Policy
from bot.rules import Mapper

DIGEST = "sha256:" + "1" * 64
MIRRORED = f"""nginx:1.25.3@{DIGEST}
nginx:1.25.3@sha256:{"3" * 64}
quay.io/calico/node:v3.27.0@sha256:{"4" * 64}
registry.k8s.io/pause:3.9@sha256:{"5" * 64}
busybox:1.36@sha256:{"6" * 64}
docker.io/bitnami/redis:7.2.4@sha256:{"7" * 64}
"""


def policy(mode: Mode = Mode.MIRRORED, mirrored: str = MIRRORED) -> Policy:
    entries = parse_list(mirrored, "mirrored-images.txt", ListKind.MIRRORED).entries
    return Policy(Mapper(Config()), MirroredIndex(entries), mode)
