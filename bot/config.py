"""Typed, frozen configuration read from ``mirror/config.yml``.

Every section has defaults that reproduce the original service, so an empty file (or none) is a working
configuration. Unknown keys are errors: a typo in a key must not silently fall back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError, InvalidReference
from bot.reference import is_repository_path, split_location

DEFAULT_CONFIG_PATH = Path("mirror/config.yml")
DEFAULT_TARGET_REGISTRY = "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn"

# source (registry host, optionally with a path prefix) -> target path prefix, as the original service did.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    ("docker.io", "dockerhub"),
    ("gcr.io", "gcr"),
    ("asia.gcr.io", "gcr"),
    ("us.gcr.io", "gcr"),
    ("eu.gcr.io", "gcr"),
    ("registry.k8s.io", "gcr/google_containers"),
    ("k8s.gcr.io", "gcr/google_containers"),
    ("quay.io", "quay"),
    ("ghcr.io", "ghcr"),
    ("public.ecr.aws", "ecrpublic"),
    ("602401143452.dkr.ecr.us-west-2.amazonaws.com", "amazonecr"),
)

DEFAULT_SKIP_WORDS: tuple[str, ...] = (
    "alpha",
    "beta",
    "rc",
    "dev",
    "nightly",
    "snapshot",
    "windowsservercore",
    "nanoserver",
)

# Registries known to serve the same images: their images may share mirror paths while their digests agree.
DEFAULT_ALIASES: tuple[tuple[str, ...], ...] = (("registry.k8s.io", "k8s.gcr.io"),)

GIB = 1024**3
DEFAULT_DENY_REASON = "its owners asked not to be mirrored"


@dataclass(frozen=True, slots=True)
class Rule:
    """Map references from ``source`` (``host`` or ``host/path/prefix``) to ``target`` (a path prefix)."""

    source: str
    target: str


@dataclass(frozen=True, slots=True)
class DenyEntry:
    """References whose canonical name (``host/repository[:tag]``) matches ``pattern`` are refused."""

    pattern: str
    reason: str = DEFAULT_DENY_REASON


@dataclass(frozen=True, slots=True)
class Limits:
    max_image_bytes: int = 10 * GIB
    max_pr_bytes: int = 30 * GIB
    max_new_lines: int = 50


@dataclass(frozen=True, slots=True)
class DailyConfig:
    skip_words: tuple[str, ...] = DEFAULT_SKIP_WORDS
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    semver: str | None = None
    newest: int | None = None
    # Per run: at most this many tags and bytes (compressed) are copied; the rest waits for the next run.
    max_tags_per_run: int | None = None
    max_bytes_per_run: int | None = None


@dataclass(frozen=True, slots=True)
class EcrSourceConfig:
    """AWS credentials for private ECR registries the rules read from (not the target's).

    A target in the China partition and sources in the global one cannot share credentials, so sources get
    their own: a named ``profile`` (from the AWS config files), a ``role_arn`` assumed with STS (from the
    profile's, or else the default, credentials), or neither (boto3's default chain).
    """

    profile: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None  # the ECR API of the sources (tests and private endpoints)

    @property
    def configured(self) -> bool:
        return bool(self.profile or self.role_arn)


@dataclass(frozen=True, slots=True)
class EcrConfig:
    region: str | None = None
    registry_id: str | None = None
    endpoint_url: str | None = None
    registry_url: str | None = None
    tag_mutability: str = "MUTABLE"
    scan_on_push: bool = False
    encryption: str = "AES256"
    kms_key: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    public_read_policy: bool = False
    sources: EcrSourceConfig = field(default_factory=EcrSourceConfig)


# The operations of registry requests that a request policy paces apart (bot/registry/policy.py).
REQUEST_OPERATIONS = (
    "manifest-read",
    "manifest-write",
    "blob-check",
    "blob-read",
    "upload-start",
    "upload-part",
    "upload-complete",
    "tag-list",
    "other",
)


@dataclass(frozen=True, slots=True)
class RequestPolicyConfig:
    """``request_policy.default`` or one entry of ``request_policy.hosts``: what is set overrides the built-in
    settings of the host (:mod:`bot.registry.policy`); None keeps them."""

    max_attempts: int | None = None
    throttle_attempts: int | None = None
    backoff: float | None = None
    max_backoff: float | None = None
    rates: tuple[tuple[str, float], ...] | None = None
    adaptive: bool | None = None
    streams: int | None = None


@dataclass(frozen=True, slots=True)
class ReferrersConfig:
    """Signatures, attestations, SBOMs and other artifacts that refer to an image are copied with it."""

    copy: bool = True
    artifact_types: tuple[str, ...] = ()  # fnmatch patterns; empty: every artifact type


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """The mutating admission webhook: which images it rewrites and who opts out."""

    # "mirrored": only images listed in mirrored-images.txt; "mappable": every image a rule covers.
    mode: str = "mirrored"
    exclude_namespaces: tuple[str, ...] = ("kube-system",)
    # A pod label or annotation with this key and the value "false" leaves the pod untouched.
    opt_out_key: str = "image-mirror-bot/rewrite"


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """How blobs move (``transfer:``): large blobs download as ``parts`` ranges of ``part_size_mib`` at once,
    and upload in resumable chunks of ``upload_chunk_mib`` (ECR takes at least 5 MiB)."""

    part_size_mib: int = 1
    parts: int = 8
    parted_from_mib: int = 1
    buffer_mib: int = 64
    upload_chunk_mib: int = 64


@dataclass(frozen=True, slots=True)
class Config:
    target_registry: str = DEFAULT_TARGET_REGISTRY
    target_prefix: str = ""
    rules: tuple[Rule, ...] = tuple(Rule(s, t) for s, t in DEFAULT_RULES)
    deny: tuple[DenyEntry, ...] = ()
    aliases: tuple[tuple[str, ...], ...] = DEFAULT_ALIASES
    insecure_registries: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    daily: DailyConfig = field(default_factory=DailyConfig)
    ecr: EcrConfig = field(default_factory=EcrConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    # How requests are retried and paced: settings for every host, then per host (lower-case host names).
    request_policy: RequestPolicyConfig = field(default_factory=RequestPolicyConfig)
    host_policies: tuple[tuple[str, RequestPolicyConfig], ...] = ()
    referrers: ReferrersConfig = field(default_factory=ReferrersConfig)
    # ``host`` or ``host/repository`` patterns (fnmatch) of images that must carry a signature upstream
    require_signature: tuple[str, ...] = ()
    source: str = "built-in defaults"
    # Where target.registry came from ("FILE: target.registry", "--registry"); None: the built-in default.
    target_from: str | None = None

    def with_target_registry(self, registry: str) -> Config:
        """The same config with another target ``HOST[/PREFIX]``; raises :class:`ConfigError` when malformed."""
        host, prefix = _location(registry, "the target registry")
        return replace(self, target_registry=host, target_prefix=prefix, target_from="--registry")


def _location(value: str, what: str, source: str | None = None) -> tuple[str, str]:
    try:
        return split_location(value)
    except InvalidReference as exc:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}{what} {value!r} is not HOST[:PORT][/PATH]: {exc.reason}") from None


def find_config(path: Path | None, from_environment: str | None = None, cwd: Path | None = None) -> Path | None:
    """The config file to read: ``path`` (``--config``), else ``from_environment`` (``MIRROR_CONFIG``), else
    ``mirror/config.yml`` in ``cwd`` or in the root of the git repository ``cwd`` is in; ``None`` when none is.
    """
    if path is not None:
        return path
    if from_environment:
        return Path(from_environment)
    cwd = cwd or Path.cwd()
    for directory in (cwd, *cwd.parents):
        candidate = directory / DEFAULT_CONFIG_PATH
        if candidate.is_file():
            return DEFAULT_CONFIG_PATH if directory == cwd else candidate
        if (directory / ".git").exists():
            break  # the repository root: never a config of an enclosing directory
    return None


def load_config(path: Path | None = None) -> Config:
    """Read the config file; ``None`` means ``mirror/config.yml`` when it exists, else the defaults."""
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: config file not found; pass an existing file to --config (or in MIRROR_CONFIG)")
        return Config()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, str(path))


def parse_config(data: object, source: str = "config") -> Config:
    """Build a :class:`Config` from already-parsed YAML data; every mistake names the key."""
    if data is None:
        return Config(source=source)
    top = _Section(data, source, "")
    target = top.section("target")
    limits = top.section("limits")
    daily = top.section("daily")
    ecr = top.section("ecr")
    ecr_sources = ecr.section("sources")
    webhook = top.section("webhook")
    transfer = top.section("transfer")
    policy = top.section("request_policy")
    hosts = policy.section("hosts")
    referrers = top.section("referrers")
    defaults = Config()
    target_host, _ = _location(target.string("registry", DEFAULT_TARGET_REGISTRY), "target.registry", source)
    target_from = f"{source}: target.registry" if target.data.get("registry") is not None else None
    target_prefix = target.string("prefix", "").strip("/")
    if target_prefix and not is_repository_path(target_prefix):
        raise ConfigError(f"{source}: target.prefix {target_prefix!r} is not a repository path (lowercase a-z0-9._-/)")
    config = Config(
        target_registry=target_host,
        target_prefix=target_prefix,
        rules=_rules(top, defaults.rules),
        deny=_deny(top),
        aliases=_aliases(top),
        insecure_registries=tuple(top.strings("insecure_registries")),
        limits=Limits(
            max_image_bytes=limits.integer("max_image_bytes", defaults.limits.max_image_bytes),
            max_pr_bytes=limits.integer("max_pr_bytes", defaults.limits.max_pr_bytes),
            max_new_lines=limits.integer("max_new_lines", defaults.limits.max_new_lines),
        ),
        daily=DailyConfig(
            skip_words=tuple(daily.strings("skip_words", DEFAULT_SKIP_WORDS)),
            include=tuple(daily.strings("include")),
            exclude=tuple(daily.strings("exclude")),
            semver=daily.optional_string("semver"),
            newest=daily.optional_integer("newest"),
            max_tags_per_run=daily.optional_integer("max_tags_per_run"),
            max_bytes_per_run=daily.optional_integer("max_bytes_per_run"),
        ),
        ecr=EcrConfig(
            region=ecr.optional_string("region"),
            registry_id=ecr.optional_string("registry_id"),
            endpoint_url=ecr.optional_string("endpoint_url"),
            registry_url=ecr.optional_string("registry_url"),
            tag_mutability=ecr.choice("tag_mutability", ("MUTABLE", "IMMUTABLE"), "MUTABLE"),
            scan_on_push=ecr.boolean("scan_on_push", False),
            encryption=ecr.choice("encryption", ("AES256", "KMS"), "AES256"),
            kms_key=ecr.optional_string("kms_key"),
            tags=tuple(sorted(ecr.mapping("tags").items())),
            public_read_policy=ecr.boolean("public_read_policy", False),
            sources=EcrSourceConfig(
                profile=ecr_sources.optional_string("profile"),
                role_arn=ecr_sources.optional_string("role_arn"),
                endpoint_url=ecr_sources.optional_string("endpoint_url"),
            ),
        ),
        webhook=WebhookConfig(
            mode=webhook.choice("mode", ("mirrored", "mappable"), "mirrored"),
            exclude_namespaces=tuple(webhook.strings("exclude_namespaces", defaults.webhook.exclude_namespaces)),
            opt_out_key=webhook.string("opt_out_key", defaults.webhook.opt_out_key),
        ),
        transfer=_transfer(transfer, defaults.transfer),
        request_policy=_request_policy(policy.section("default")),
        host_policies=tuple(
            (host.lower(), _request_policy(hosts.section(host))) for host in sorted(map(str, hosts.data))
        ),
        referrers=ReferrersConfig(
            copy=referrers.boolean("copy", True),
            artifact_types=tuple(referrers.strings("artifact_types")),
        ),
        require_signature=tuple(top.strings("require_signature")),
        source=source,
        target_from=target_from,
    )
    for section in (top, target, limits, daily, ecr, ecr_sources, webhook, transfer, referrers, policy, hosts):
        section.reject_unknown()
    return config


def _transfer(section: _Section, defaults: TransferConfig) -> TransferConfig:
    values = {
        key: section.integer(key, getattr(defaults, key))
        for key in ("part_size_mib", "parts", "parted_from_mib", "buffer_mib", "upload_chunk_mib")
    }
    smallest = {"upload_chunk_mib": 5, "parted_from_mib": 0}
    for key, value in values.items():
        if value < smallest.get(key, 1):
            raise ConfigError(f"{section.source}: transfer.{key} is {value}; give {smallest.get(key, 1)} or more")
    return TransferConfig(**values)


def _request_policy(section: _Section) -> RequestPolicyConfig:
    rates = section.optional_numbers("rates")
    unknown = sorted(set(rates or ()) - set(REQUEST_OPERATIONS))
    if unknown:
        raise ConfigError(
            f"{section.source}: {section.path}.rates: unknown operation {unknown[0]!r}; choose from "
            + ", ".join(REQUEST_OPERATIONS)
        )
    config = RequestPolicyConfig(
        max_attempts=section.optional_integer("max_attempts", minimum=1),
        throttle_attempts=section.optional_integer("throttle_attempts", minimum=1),
        backoff=section.optional_number("backoff"),
        max_backoff=section.optional_number("max_backoff"),
        rates=tuple(sorted(rates.items())) if rates is not None else None,
        adaptive=section.optional_boolean("adaptive"),
        streams=section.optional_integer("streams", minimum=1),
    )
    section.reject_unknown()
    return config


def _rules(top: _Section, defaults: tuple[Rule, ...]) -> tuple[Rule, ...]:
    items = top.sequence("rules")
    if items is None:
        return defaults
    rules = []
    for index, item in enumerate(items):
        entry = _Section(item, top.source, f"rules[{index}]")
        rule = Rule(entry.string("source", ""), entry.string("target", ""))
        entry.reject_unknown()
        if not rule.source or not rule.target:
            raise ConfigError(f"{top.source}: rules[{index}] needs both 'source' and 'target'")
        host, prefix = _location(rule.source, f"rules[{index}].source", top.source)
        host = host.lower()
        target = rule.target.strip("/")
        if not is_repository_path(target):
            raise ConfigError(
                f"{top.source}: rules[{index}].target {rule.target!r} is not a repository path (lowercase a-z0-9._-/)"
            )
        rules.append(Rule(f"{host}/{prefix}" if prefix else host, target))
    return tuple(rules)


def _aliases(top: _Section) -> tuple[tuple[str, ...], ...]:
    """``aliases:``: groups of sources (``host`` or ``host/path/prefix``) that serve the same images."""
    items = top.sequence("aliases")
    if items is None:
        return DEFAULT_ALIASES
    groups = []
    for index, item in enumerate(items):
        key = f"aliases[{index}]"
        if not isinstance(item, list) or len(item) < 2 or not all(isinstance(part, str) for part in item):
            raise ConfigError(
                f"{top.source}: {key} must be a list of two or more sources, e.g. [registry.k8s.io, k8s.gcr.io]"
            )
        members = []
        for part in item:
            host, prefix = _location(part, key, top.source)
            members.append(f"{host.lower()}/{prefix}" if prefix else host.lower())
        groups.append(tuple(members))
    return tuple(groups)


def _deny(top: _Section) -> tuple[DenyEntry, ...]:
    entries = []
    for index, item in enumerate(top.sequence("deny") or ()):
        if isinstance(item, str):
            entries.append(DenyEntry(item))
            continue
        entry = _Section(item, top.source, f"deny[{index}]")
        pattern = entry.string("pattern", "")
        if not pattern:
            raise ConfigError(f"{top.source}: deny[{index}] needs a 'pattern'")
        entries.append(DenyEntry(pattern, entry.string("reason", DEFAULT_DENY_REASON)))
        entry.reject_unknown()
    return tuple(entries)


class _Section:
    """Typed access to one mapping of the YAML file, remembering which keys were read."""

    def __init__(self, data: object, source: str, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: {path or 'the top level'} must be a mapping of keys to values")
        self.data: dict[str, Any] = data
        self.source = source
        self.path = path
        self.seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def _wrong(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self._key(key)} must be {expected}")

    def section(self, key: str) -> _Section:
        return _Section(self._get(key), self.source, self._key(key))

    def string(self, key: str, default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self._get(key)
        if value is not None and not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self.optional_integer(key)
        return default if value is None else value

    def optional_integer(self, key: str, *, minimum: int = 0) -> int | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._wrong(
                key, "a whole number, zero or more" if minimum == 0 else f"a whole number, {minimum} or more"
            )
        return value

    def optional_number(self, key: str) -> float | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise self._wrong(key, "a number above zero")
        return float(value)

    def optional_numbers(self, key: str) -> dict[str, float] | None:
        """A mapping of names to numbers above zero, or None when absent."""
        if self.data.get(key) is None:
            self.seen.add(key)
            return None
        numbers = self.section(key)
        result = {}
        for name in map(str, numbers.data):
            result[name] = numbers.optional_number(name)
        return {name: value for name, value in result.items() if value is not None}

    def optional_boolean(self, key: str) -> bool | None:
        value = self._get(key)
        if value is not None and not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise self._wrong(key, "one of " + ", ".join(choices))
        return value

    def sequence(self, key: str) -> list[Any] | None:
        value = self._get(key)
        if value is not None and not isinstance(value, list):
            raise self._wrong(key, "a list")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> list[str]:
        value = self.sequence(key)
        if value is None:
            return list(default)
        if not all(isinstance(item, str) for item in value):
            raise self._wrong(key, "a list of strings")
        return value

    def mapping(self, key: str) -> dict[str, str]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise self._wrong(key, "a mapping of strings to strings")
        return value

    def reject_unknown(self) -> None:
        unknown = sorted(set(map(str, self.data)) - self.seen)
        if unknown:
            where = f" in {self.path}" if self.path else ""
            raise ConfigError(
                f"{self.source}: unknown key {unknown[0]!r}{where}; check the spelling against the README"
            )
