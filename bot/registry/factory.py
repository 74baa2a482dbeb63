"""Build a registry client for a run from the config: the rules are the allow-list of hosts."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Config
from bot.errors import UsageError
from bot.registry.auth import Credentials, normalize_host
from bot.registry.models import Platform
from bot.rules import Mapper

if TYPE_CHECKING:  # requests loads only when a command builds a client
    from bot.registry.client import RegistryClient
    from bot.registry.referrers import ReferrerPolicy
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


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that talks to registries shares."""
    parser.add_argument(
        "--platform",
        action="append",
        default=None,
        metavar="OS/ARCH[/VARIANT]",
        help="copy only these platforms (repeat or separate with commas); default: every platform, digest-exact",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        metavar="N",
        help="images and blobs transferred at once (default: %(default)s)",
    )
    parser.add_argument(
        "--part-size",
        type=int,
        default=None,
        metavar="MIB",
        help="large blobs download as ranges of this many MiB, several at once (default: transfer.part_size_mib "
        "of the config, 8)",
    )
    parser.add_argument(
        "--parts",
        type=int,
        default=None,
        metavar="N",
        help="ranges of one large blob downloaded at once; 1 downloads over one connection (default: "
        "transfer.parts of the config, 8)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be copied and how many bytes")
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="speak plain HTTP to this registry (loopback registries always are)",
    )
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        default=None,
        metavar="FILE",
        help="CA certificates to verify registries' TLS with (default: the system's)",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="HOST=URL",
        help="send requests for HOST to URL instead, e.g. a registry mirror or a test registry",
    )
    parser.add_argument(
        "--referrers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="copy the signatures, attestations, SBOMs and other artifacts that refer to each image (default: "
        "referrers.copy in the config, on unless it says false)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up a try when a registry sends nothing for this long, mid-answer or before it; the try is "
        "retried, so a stalled registry costs a bounded time, never a hang; a blob transfer that averages under "
        "1 KiB/s over this long is retried too (default: %(default)g)",
    )


def platforms_from_args(args: argparse.Namespace) -> tuple[Platform, ...] | None:
    if not args.platform:
        return None
    result: list[Platform] = []
    for value in args.platform:
        for item in value.split(","):
            try:
                result.append(Platform.parse(item))
            except ValueError as exc:
                raise UsageError(f"--platform: {exc}") from None
    return tuple(result)


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """The checked registry options of a command (:func:`add_registry_options`) that shape its client."""

    endpoints: Mapping[str, str]
    verify: bool | str
    insecure_registries: tuple[str, ...]
    concurrency: int
    environ: Mapping[str, str]  # where credentials come from (Settings.registry_environ)
    timeout: float = DEFAULT_TIMEOUT
    part_size_mib: int | None = None
    parts: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClientOptions:
        """``--endpoint HOST=URL``, ``--ca-bundle``, ``--insecure-registry``, ``--concurrency`` and
        ``--timeout``, checked."""
        if args.concurrency < 1:
            raise UsageError("--concurrency must be 1 or more")
        part_size, parts = getattr(args, "part_size", None), getattr(args, "parts", None)
        if part_size is not None and part_size < 1:
            raise UsageError("--part-size must be 1 (MiB) or more")
        if parts is not None and parts < 1:
            raise UsageError("--parts must be 1 or more")
        timeout = float(args.timeout)
        if not 0 < timeout <= 3600:  # also refuses nan
            raise UsageError(f"--timeout {timeout:g}: give a number of seconds above 0 and at most 3600")
        endpoints: dict[str, str] = {}
        for item in args.endpoint:
            host, sep, url = item.partition("=")
            if not sep or not host or not url.startswith(("http://", "https://")):
                raise UsageError(f"--endpoint {item!r}: write HOST=URL, e.g. registry.example=https://127.0.0.1:5443")
            endpoints[host] = url
        if args.ca_bundle is not None and not args.ca_bundle.is_file():
            raise UsageError(f"--ca-bundle {args.ca_bundle}: no such file")
        return cls(
            endpoints=endpoints,
            verify=str(args.ca_bundle) if args.ca_bundle else True,
            insecure_registries=tuple(args.insecure_registry),
            concurrency=args.concurrency,
            environ=args.settings.registry_environ,
            timeout=timeout,
            part_size_mib=part_size,
            parts=parts,
        )

    def build(
        self, config: Config, *, credentials: Credentials | None = None, extra_hosts: Iterable[str] = ()
    ) -> RegistryClient:
        """:func:`build_client` with these options."""
        return build_client(
            config,
            credentials=credentials,
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


def client_from_args(args: argparse.Namespace, config: Config, extra_hosts: Iterable[str] = ()) -> RegistryClient:
    return ClientOptions.from_args(args).build(config, extra_hosts=extra_hosts)


def referrer_policy(args: argparse.Namespace, config: Config) -> ReferrerPolicy:
    """What to carry along with each image: the config's ``referrers:`` and ``require_signature:``, with
    ``--referrers`` / ``--no-referrers`` overriding ``referrers.copy`` for this run."""
    from bot.registry.referrers import ReferrerPolicy

    enabled = config.referrers.copy if args.referrers is None else bool(args.referrers)
    return ReferrerPolicy(enabled, config.referrers.artifact_types, config.require_signature)
