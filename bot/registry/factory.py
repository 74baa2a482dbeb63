"""Build a registry client for a run from the config: the rules are the allow-list of hosts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Config, RequestPolicyConfig
from bot.registry.auth import Credentials, normalize_host
from bot.rules import Mapper

if TYPE_CHECKING:  # requests loads only when a command builds a client
    from bot.registry.client import RegistryClient
    from bot.registry.policy import HostSettings
    from bot.registry.transfer import TransferSettings

# Seconds a registry may stay silent mid-response before the try fails and is retried: long enough for a
# slow registry or a loaded CI runner, short enough that a stalled connection cannot hang a run for long.
DEFAULT_TIMEOUT = 60.0


def allowed_hosts(config: Config, extra: Iterable[str] = ()) -> frozenset[str]:
    """Every host a rule names, the target registry, and ``extra`` (hosts the user named explicitly)."""
    hosts = set(Mapper(config).hosts) | {config.target_registry} | set(extra)
    return frozenset(normalize_host(host) for host in hosts)


def build_client(
    config: Config,
    *,
    credentials: Credentials | None = None,
    endpoints: Mapping[str, str] | None = None,
    verify: bool | str = True,
    insecure_registries: Iterable[str] = (),
    extra_hosts: Iterable[str] = (),
    concurrency: int = 4,
    environ: Mapping[str, str] | None = None,
    docker_config: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    part_size_mib: int | None = None,
    parts: int | None = None,
    host_defaults: Mapping[str, HostSettings] | None = None,
) -> RegistryClient:
    """A client that may contact only the config's registries (plus ``extra_hosts``).

    Without ``credentials`` they are read from the docker config.json and the ``MIRROR_AUTH_<HOST>_*``
    variables of every allowed host in ``environ`` (:attr:`bot.settings.Settings.registry_environ`);
    ``config.insecure_registries`` and ``insecure_registries`` are spoken to over plain HTTP.
    ``timeout`` is the read timeout: how long a response may stay silent before the try is given up.
    ``part_size_mib`` and ``parts`` override the config's ``transfer:`` values.
    """
    from bot.registry.client import RegistryClient
    from bot.registry.transport import TransportSettings

    hosts = allowed_hosts(config, extra_hosts)
    if credentials is None:
        if environ is None:
            raise ValueError("build_client needs the credentials, or the environment to read them from")
        credentials = Credentials.from_environment(environ, docker_config=docker_config, hosts=hosts)
    settings = TransportSettings(
        hosts=host_policies(config, hosts, host_defaults),
        endpoints=dict(endpoints or {}),
        verify=verify,
        insecure_registries=frozenset(normalize_host(h) for h in (*config.insecure_registries, *insecure_registries)),
        allowed_hosts=hosts,
        pool_size=max(8, concurrency * 12),  # blob streams grow to 4x concurrency, each with parts
        read_timeout=timeout,
    )
    return RegistryClient(
        settings=settings, credentials=credentials, transfer=transfer_settings(config, part_size_mib, parts)
    )


def transfer_settings(config: Config, part_size_mib: int | None = None, parts: int | None = None) -> TransferSettings:
    """The config's ``transfer:`` section (with the command line's ``--part-size`` and ``--parts``), in bytes."""
    from bot.registry.transfer import MiB, TransferSettings

    tuning = config.transfer
    return TransferSettings(
        part_size=(part_size_mib or tuning.part_size_mib) * MiB,
        parts=parts or tuning.parts,
        parted_from=tuning.parted_from_mib * MiB,
        buffer_bytes=tuning.buffer_mib * MiB,
        upload_chunk=tuning.upload_chunk_mib * MiB,
    )


def host_policies(
    config: Config, hosts: Iterable[str], defaults: Mapping[str, HostSettings] | None = None
) -> dict[str, HostSettings]:
    """The request policy of every host: ``defaults`` (what a target kind knows of its hosts, such as ECR's
    documented quotas) or the built-in settings, then ``request_policy.default`` and
    ``request_policy.hosts.HOST`` of the config."""
    from bot.registry.policy import HostSettings

    configured = dict(config.host_policies)
    known = {normalize_host(host): settings for host, settings in (defaults or {}).items()}
    result: dict[str, HostSettings] = {}
    for host in sorted({*hosts, *configured}):
        settings = known.get(normalize_host(host), HostSettings())
        for override in (config.request_policy, configured.get(host)):
            if override is not None:
                settings = _apply(settings, override)
        result[host] = settings
    return result


def _apply(settings: HostSettings, override: RequestPolicyConfig) -> HostSettings:
    changes: dict[str, object] = {
        name: getattr(override, name)
        for name in ("max_attempts", "throttle_attempts", "backoff", "max_backoff", "adaptive", "streams")
        if getattr(override, name) is not None
    }
    if override.rates is not None:
        changes["rates"] = {**settings.rates, **dict(override.rates)}
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """The checked registry options of a run that shape its client (the command layer reads them from argv)."""

    endpoints: Mapping[str, str]
    verify: bool | str
    insecure_registries: tuple[str, ...]
    concurrency: int
    environ: Mapping[str, str]  # where credentials come from (Settings.registry_environ)
    timeout: float = DEFAULT_TIMEOUT
    part_size_mib: int | None = None
    parts: int | None = None

    def build(
        self,
        config: Config,
        *,
        credentials: Credentials | None = None,
        extra_hosts: Iterable[str] = (),
        host_defaults: Mapping[str, HostSettings] | None = None,
    ) -> RegistryClient:
        """:func:`build_client` with these options."""
        return build_client(
            config,
            credentials=credentials,
            host_defaults=host_defaults,
            endpoints=self.endpoints,
            verify=self.verify,
            insecure_registries=self.insecure_registries,
            extra_hosts=extra_hosts,
            concurrency=self.concurrency,
            environ=self.environ,
            timeout=self.timeout,
            part_size_mib=self.part_size_mib,
            parts=self.parts,
        )
