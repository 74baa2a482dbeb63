"""Target registry kinds: how each names, logs in, prepares repositories and explains refusals.

This is the one place that decides which kind a config's target is. Commands that write open the target
through :func:`open_target`; ``check``, ``validate-pr`` and ``map`` ask :func:`kind_for` for its naming rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TextIO

from bot.config import Config
from bot.rules import Mapper
from bot.targets.base import NameProblem, TargetKind, TargetSession
from bot.targets.ecr import (
    SOURCE_READ_ACTIONS,
    EcrLogins,
    EcrTarget,
    is_ecr_target,
    locate,
    parse_registry_host,
    partition,
)
from bot.targets.oci import OciTarget

if TYPE_CHECKING:
    from bot.registry.auth import Credentials
    from bot.registry.factory import ClientOptions

__all__ = [
    "NameProblem",
    "TargetKind",
    "TargetSession",
    "kind_for",
    "mapper_for",
    "open_target",
    "registry_credentials",
]


def kind_for(config: Config) -> TargetKind:
    """The kind of the config's target registry."""
    if is_ecr_target(config):
        return EcrTarget(config)
    return OciTarget(config)


def mapper_for(config: Config) -> Mapper:
    """The config's path rules with its target's naming rules: a path the target cannot hold is refused when
    mapped (``check``, ``validate-pr``, ``map``), not after a push."""
    return Mapper(config, naming=kind_for(config).name_problem)


def registry_credentials(
    config: Config,
    environ: Mapping[str, str],
    extra_hosts: Iterable[str] = (),
    *,
    log: TextIO | None = None,
    mask: bool = False,
) -> Credentials:
    """The logins of every registry a run may contact: docker config.json and ``MIRROR_AUTH_<HOST>_*`` from
    ``environ`` (:attr:`bot.settings.Settings.registry_environ`), and a token minted with boto3 for each private
    ECR source (``ecr.sources``), masked in the log when ``mask`` (in Actions)."""
    from bot.registry.auth import Credentials
    from bot.registry.factory import allowed_hosts

    hosts = allowed_hosts(config, extra_hosts)
    base = Credentials.from_environment(environ, hosts=hosts)
    if not any(parse_registry_host(host) for host in hosts):
        return base
    return EcrLogins(base, config.ecr.sources, log=log, mask=mask)


def open_target(
    config: Config,
    options: ClientOptions,
    *,
    extra_hosts: Iterable[str] = (),
    log: TextIO | None = None,
    mask: bool = False,
) -> TargetSession:
    """Log in to the target (and the sources) and return the session every writing command copies through;
    minted tokens are masked in the log when ``mask`` (in Actions)."""
    credentials = registry_credentials(config, options.environ, extra_hosts, log=log, mask=mask)
    return kind_for(config).open(options, credentials, extra_hosts=extra_hosts, log=log, mask=mask)


def source_credentials_missing(config: Config, host: str, *, aws_credentials: bool) -> str | None:
    """What is missing to read the private ECR registry ``host`` (offline), or ``None``. ``aws_credentials``:
    the job has AWS credentials of its own (:attr:`bot.settings.Settings.aws_credentials`); credentials of the
    target's partition cannot read a source in another (China vs global)."""
    source = parse_registry_host(host)
    if config.ecr.sources.configured or source is None:
        return None
    how = "set ecr.sources.profile or ecr.sources.role_arn in mirror/config.yml; the identity needs " + ", ".join(
        SOURCE_READ_ACTIONS
    )
    target_region = locate(config).region if is_ecr_target(config) else None
    if target_region and partition(target_region) != partition(source[1]):
        return (
            f"its partition ({partition(source[1])}) is not the target's ({partition(target_region)}), so the job's "
            f"AWS credentials for the target cannot read it: {how}"
        )
    if aws_credentials:
        return None
    return f"no AWS credentials to read it: {how}, or give the job AWS credentials (configure-aws-credentials)"
