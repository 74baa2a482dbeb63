"""AWS ECR as a target (and as a source): its host names, naming rules, login, repositories, refusals.

The ECR API endpoint (``ecr.endpoint_url``) and the registry endpoint (``ecr.registry_url``) can both be pointed
elsewhere, which is how the tests pair a local ECR control plane with a local registry. boto3 loads only when a
run logs in (:mod:`bot.targets.aws`); the naming rules here are pure, for the offline ``check``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

from bot.config import Config, EcrConfig, EcrSourceConfig
from bot.errors import FAILURE_DENIED, FAILURE_UNAUTHORIZED, AwsError, CopyError, Failure, RegistryError
from bot.registry.auth import Credentials, Login, normalize_host
from bot.registry.models import MOUNT_REFERENCED
from bot.rules import Target
from bot.targets.base import NameProblem, TargetSession
from bot.targets.oci import tag_problem

if TYPE_CHECKING:
    from bot.registry.client import RegistryClient
    from bot.registry.factory import ClientOptions
    from bot.registry.policy import HostSettings
    from bot.targets.aws import Ecr, EcrLocation

# Registry hosts: ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn], and the dual-stack (IPv4 and IPv6)
# ACCOUNT.dkr-ecr.REGION.on.aws (https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-requests.html).
_ECR_HOST = re.compile(
    r"(?P<account>[0-9]{12})\.(?:dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com(?:\.cn)?"
    r"|dkr-ecr\.(?P<dual>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.on\.aws)"
)

# CreateRepository: "Length Constraints: Minimum length of 2. Maximum length of 256." and the pattern below
# (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html). The distribution
# grammar also allows "__", "--" and runs of separators, which ECR refuses with InvalidParameterException.
REPOSITORY_PATTERN = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
REPOSITORY_MIN, REPOSITORY_MAX = 2, 256
# ImageIdentifier.imageTag allows 300 characters
# (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageIdentifier.html), but tags reach ECR
# through its registry API, which takes OCI tags: at most 128.
TAG_MAX = 128

# The default rate quotas of a private ECR registry, requests per second per API, per account and Region
# (https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html), by the operation of the request
# policy (bot/registry/policy.py) each API serves. The bot never goes above them; when other clients share the
# quota, or an account's quotas are lower (earlier versions of that page list 200/s for BatchCheckLayerAvailability
# and 10/s for InitiateLayerUpload and CompleteLayerUpload), its 429 answers slow the bot down further.
QUOTA_RATES: dict[str, float] = {
    "manifest-read": 2000.0,  # BatchGetImage
    "manifest-write": 10.0,  # PutImage
    "blob-check": 1000.0,  # BatchCheckLayerAvailability
    "blob-read": 3000.0,  # GetDownloadUrlForLayer
    "upload-start": 100.0,  # InitiateLayerUpload
    "upload-part": 500.0,  # UploadLayerPart
    "upload-complete": 100.0,  # CompleteLayerUpload
}

# What ECR's registry answers for an expired token (403, not 401), as its troubleshooting page quotes it
# (https://docs.aws.amazon.com/AmazonECR/latest/userguide/common-errors-docker.html#error-403).
EXPIRED_PHRASE = "authorization token has expired"

# Settings of the ECR registries the bot only reads from (it never creates repositories there).
_SOURCE_SETTINGS = EcrConfig()

# The IAM actions a private ECR source needs from the identity that reads it.
SOURCE_READ_ACTIONS = ("ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


def request_defaults(hosts: Iterable[str]) -> dict[str, HostSettings]:
    """The request policy each ECR registry among ``hosts`` starts from: its documented rate quotas."""
    from bot.registry.policy import HostSettings

    return {host: HostSettings(rates=QUOTA_RATES) for host in hosts if parse_registry_host(host) is not None}


def registry_host(account: str, region: str) -> str:
    """The registry host of ``account`` in ``region``; the China regions live under ``amazonaws.com.cn``."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def parse_registry_host(host: str) -> tuple[str, str] | None:
    """``(account, region)`` of an ECR registry host, or ``None`` when ``host`` is not one."""
    match = _ECR_HOST.fullmatch(normalize_host(host).split(":", 1)[0])
    if match is None:
        return None
    return match["account"], match["region"] or match["dual"]


def partition(region: str) -> str:
    """The AWS partition of ``region``: credentials of one cannot sign requests to another."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def is_ecr_target(config: Config) -> bool:
    """True when the target registry is ECR: an ECR host, or an ``ecr:`` endpoint is configured."""
    ecr = config.ecr
    if parse_registry_host(config.target_registry) is not None:
        return True
    return bool(ecr.registry_url or ecr.endpoint_url or ecr.registry_id)


def locate(config: Config) -> EcrLocation:
    """Account and region from ``ecr:`` settings first, else from the target registry host."""
    from bot.targets.aws import EcrLocation

    parsed = parse_registry_host(config.target_registry)
    account = config.ecr.registry_id or (parsed[0] if parsed else None)
    region = config.ecr.region or (parsed[1] if parsed else None)
    return EcrLocation(account, region, config.ecr.registry_url)


def repository_problem(repository: str) -> NameProblem | None:
    """Why ECR cannot create ``repository`` (pure), or ``None``."""
    if not REPOSITORY_MIN <= len(repository) <= REPOSITORY_MAX:
        return NameProblem(
            f"ECR repository name length ({REPOSITORY_MIN} to {REPOSITORY_MAX} characters)",
            f"the mirror repository {repository} has {len(repository)} characters",
            "mirror an image with a shorter path, or ask the maintainers for a shorter rule target or target.prefix",
        )
    if REPOSITORY_PATTERN.fullmatch(repository) is None:
        return NameProblem(
            "ECR repository name pattern (lowercase letters and digits, one '.', '_' or '-' between them)",
            f"ECR refuses the mirror repository {repository}: it has '__', '--' or another run of separators",
            "this image cannot be mirrored into ECR under its name; ask the maintainers for a rule that renames it",
        )
    return None


class EcrTarget:
    """The ECR target kind."""

    label = "ECR"

    def __init__(self, config: Config) -> None:
        self.config = config

    def name_problem(self, target: Target) -> NameProblem | None:
        return repository_problem(target.repository) or tag_problem(target, TAG_MAX, "ECR image tag length")

    def open(
        self,
        options: ClientOptions,
        credentials: Credentials,
        *,
        extra_hosts: Iterable[str] = (),
        log: TextIO | None = None,
        mask: bool = False,
    ) -> TargetSession:
        """Log in (failing early, naming the IAM action, before anything is copied) and build the client.

        The target host is sent to ``ecr.registry_url`` (or the token's proxy endpoint) and always gets the
        current token, refreshed before it expires and once more when the registry says it expired.
        """
        from bot.registry.factory import allowed_hosts
        from bot.targets.aws import Ecr, make_client

        config = self.config
        location = locate(config)
        ecr = Ecr(make_client(location, config.ecr.endpoint_url), config.ecr, location, log=log, mask=mask)
        login = ecr.login()
        host = config.target_registry
        if normalize_host(host) not in {normalize_host(name) for name in options.endpoints}:
            options = replace(options, endpoints={**options.endpoints, host: login.registry_url})
        logins = EcrLogins(credentials, config.ecr.sources, log=log, mask=mask)
        logins.add_registry(host, ecr)
        quotas = request_defaults(allowed_hosts(config, extra_hosts))  # the target, and ECR sources
        client = options.build(config, credentials=logins, extra_hosts=extra_hosts, host_defaults=quotas)
        return EcrSession(client, ecr)


class EcrSession(TargetSession):
    """A run into ECR: repositories are created before the first push, IMMUTABLE tags are checked before any
    blob moves, refusals name the IAM action, mounts come only from repositories whose pushed manifests
    reference the blob (the only mounts ECR performs)."""

    mount_policy = MOUNT_REFERENCED

    def __init__(self, client: RegistryClient, ecr: Ecr) -> None:
        super().__init__(client)
        self.ecr = ecr

    def prepare(self, target: Target) -> None:
        self.ecr.ensure_repository(target.repository)
        if target.tag is None or not self.ecr.tag_immutable(target.repository, target.tag):
            return
        # Called only when the target tag does not hold the digest to copy: in an IMMUTABLE repository a tag
        # that exists at all holds another digest, and ECR would refuse the manifest after every blob moved.
        held = self.client.head_manifest(target.registry, target.repository, target.tag)
        if held is not None:
            raise CopyError(
                f"the ECR repository {target.repository} has IMMUTABLE tags and {target.tag} already holds "
                f"{held.digest}, another digest than upstream's now (the tag moved upstream); nothing was pushed. "
                "Fix: mirror the image by digest or under a new tag, or make the repository's tags MUTABLE "
                "(aws ecr put-image-tag-mutability) if the mirror should follow moved tags"
            )

    def explain(self, failure: Failure) -> str | None:
        return explain_denied(failure, self.ecr.registry_host)


class EcrLogins(Credentials):
    """Registry credentials where ECR hosts get a current token: the target's (added by the target kind) and
    any private ECR source's, minted with the credentials of ``ecr.sources`` on first use."""

    def __init__(
        self, base: Credentials, sources: EcrSourceConfig, *, log: TextIO | None = None, mask: bool = False
    ) -> None:
        logins = {name: login for name in base.hosts() if (login := base.get(name)) is not None}
        super().__init__(logins)
        self.sources = sources
        self.log = log
        self.mask = mask
        self._registries: dict[str, Ecr] = {}
        self._registry_lock = threading.Lock()

    def add_registry(self, host: str, ecr: Ecr) -> None:
        with self._registry_lock:
            self._registries[normalize_host(host)] = ecr

    def _ecr(self, host: str) -> Ecr | None:
        host = normalize_host(host)
        with self._registry_lock:
            known = self._registries.get(host)
            if known is not None or super().get(host) is not None:
                return known  # a configured login (docker config, MIRROR_AUTH_*) wins over minting one
            parsed = parse_registry_host(host)
            if parsed is None:
                return None
            from bot.targets.aws import Ecr, EcrLocation, make_client

            location = EcrLocation(parsed[0], parsed[1], f"https://{host}")
            client = make_client(location, self.sources.endpoint_url, self.sources)
            ecr = Ecr(client, _SOURCE_SETTINGS, location, log=self.log, mask=self.mask)
            self._registries[host] = ecr
            return ecr

    def close(self) -> None:
        with self._registry_lock:
            registries = list(self._registries.values())
        for ecr in registries:
            ecr.client.close()

    def get(self, host: str) -> Login | None:
        try:
            ecr = self._ecr(host)
            if ecr is None:
                return super().get(host)
            login = ecr.login()
        except AwsError as exc:
            if self._is_target(host):
                raise
            raise AwsError(
                f"{normalize_host(host)} is a private ECR registry; {exc.message}. Give the bot credentials that "
                "may read it: ecr.sources.profile or ecr.sources.role_arn in mirror/config.yml (an identity with "
                + ", ".join(SOURCE_READ_ACTIONS)
                + ")"
            ) from exc
        return Login(login.username, login.password)

    def _is_target(self, host: str) -> bool:
        with self._registry_lock:
            ecr = self._registries.get(normalize_host(host))
        return ecr is not None and ecr.settings is not _SOURCE_SETTINGS

    def renew(self, host: str, refused: str | None, denied: RegistryError) -> bool:
        """After ECR's 403 saying the token expired: a fresh token, one fetch however many threads saw it.

        A HEAD answer has no body to say why, so a 403 to a HEAD renews too, unless the token is fresh.
        """
        said_expired = EXPIRED_PHRASE in denied.message.lower()
        if denied.method != "HEAD" and not said_expired:
            return False
        ecr = self._ecr(host)
        if ecr is None:
            return False
        current = ecr.login()
        if refused is not None and Login(current.username, current.password).basic_header() != refused:
            return True  # another thread renewed it already
        return ecr.renew(current.password, said_expired=said_expired) is not None


# Registry API requests and the IAM action ECR checks for each (used to explain a 403 from the registry).
def registry_action(method: str, path: str) -> str:
    """The IAM action ECR requires for a registry API request (``method`` and URL path)."""
    method = method.upper()
    if "/manifests/" in path:
        if method == "DELETE":
            return "ecr:BatchDeleteImage"
        return "ecr:PutImage" if method == "PUT" else "ecr:BatchGetImage"
    if "/blobs/uploads" in path:
        if method == "PATCH":
            return "ecr:UploadLayerPart"
        if method == "PUT":
            return "ecr:CompleteLayerUpload"
        return "ecr:InitiateLayerUpload"
    if "/blobs/" in path:
        return "ecr:BatchCheckLayerAvailability" if method == "HEAD" else "ecr:GetDownloadUrlForLayer"
    if path.endswith("/tags/list"):
        return "ecr:ListImages"
    return "ecr:GetAuthorizationToken"


def explain_denied(failure: Failure, registry: str) -> str | None:
    """What ECR wants when its registry (``host[:port]`` of its API) refused a request of a failed copy.

    A permission denial names the IAM action; a refused or expired token says so and names none.
    """
    if failure.registry is None or failure.registry != registry or failure.method is None:
        return None
    if failure.kind == FAILURE_UNAUTHORIZED:
        return "ECR refused the authorization token: expired, or issued for another registry id"
    if failure.kind != FAILURE_DENIED:
        return None
    if EXPIRED_PHRASE in failure.message.lower():
        return "ECR said the authorization token expired, and refused the fresh one too; run again"
    action = registry_action(failure.method, failure.reference or "")
    if failure.method == "HEAD":  # a HEAD answer carries no reason
        return (
            f"ECR gives no reason for a refused HEAD: the AWS identity lacks the IAM action {action} on this "
            "repository, or the token expired"
        )
    return f"the AWS identity needs the IAM action {action} on this repository"
