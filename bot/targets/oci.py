"""A plain OCI registry (distribution, Harbor's core, Quay, Artifactory...): pushing creates repositories.

Naming limits from the distribution reference grammar (the OCI distribution spec defers to it): a name of
at most 255 characters including the registry host
(https://github.com/distribution/reference/blob/main/reference.go, ``NameTotalLengthMax``), and tags of at
most 128 characters (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from bot.config import Config
from bot.rules import Target
from bot.targets.base import NameProblem, TargetSession

if TYPE_CHECKING:
    from bot.registry.auth import Credentials
    from bot.registry.factory import ClientOptions

NAME_MAX = 255
TAG_MAX = 128


class OciTarget:
    label = "OCI registry"

    def __init__(self, config: Config) -> None:
        self.config = config

    def name_problem(self, target: Target) -> NameProblem | None:
        if len(target.name) > NAME_MAX:
            return NameProblem(
                f"OCI name length (at most {NAME_MAX} characters with the registry host)",
                f"the mirror name {target.name} has {len(target.name)} characters",
                "mirror an image with a shorter path, or ask the maintainers for a shorter rule target or "
                "target.prefix",
            )
        return tag_problem(target, TAG_MAX, "OCI tag length")

    def open(
        self,
        options: ClientOptions,
        credentials: Credentials,
        *,
        extra_hosts: Iterable[str] = (),
        log: TextIO | None = None,
        mask: bool = False,
    ) -> TargetSession:
        from bot.registry.factory import allowed_hosts
        from bot.targets.ecr import request_defaults

        quotas = request_defaults(allowed_hosts(self.config, extra_hosts))  # ECR sources keep to their quotas
        client = options.build(self.config, credentials=credentials, extra_hosts=extra_hosts, host_defaults=quotas)
        return TargetSession(client)


def tag_problem(target: Target, limit: int, rule: str) -> NameProblem | None:
    """A tag over ``limit`` characters (the reference grammar already allows at most 128)."""
    if target.tag is not None and len(target.tag) > limit:
        return NameProblem(
            f"{rule} (at most {limit} characters)",
            f"the tag has {len(target.tag)} characters",
            "pin the image by digest, or mirror a tag with a shorter name",
            part="tag",
        )
    return None
