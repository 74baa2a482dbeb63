"""AWS ECR adapter over boto3: registry login, repositories created on demand, IAM-aware errors.

Credentials come from boto3's default chain (environment, profiles, the web-identity role that
``aws-actions/configure-aws-credentials`` sets up); nothing here reads keys itself. The ECR API endpoint
(``ecr.endpoint_url``) and the registry endpoint (``ecr.registry_url``) can both be pointed elsewhere, which is
how the tests pair a local ECR control plane with a local registry.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from bot.config import Config, EcrConfig
from bot.errors import AwsError
from bot.github import actions
from bot.redact import remember
from bot.registry.auth import Credentials, Login, normalize_host
from bot.registry.client import RegistryClient
from bot.rules import Target

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

_ECR_HOST = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com(?P<cn>\.cn)?"
)

# Pull access that the original service granted to everyone on every repository.
PUBLIC_READ_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")

# Tokens live 12 hours; one is replaced this long before it expires.
REFRESH_MARGIN_SECONDS = 15 * 60
# ... but never more often than this, so a token that is already expired when handed out (as a local ECR
# emulator does) cannot make every request fetch a new one.
MIN_REFRESH_INTERVAL_SECONDS = 10 * 60


def registry_host(account: str, region: str) -> str:
    """The registry host of ``account`` in ``region``; the China regions live under ``amazonaws.com.cn``."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def parse_registry_host(host: str) -> tuple[str, str] | None:
    """``(account, region)`` of an ECR registry host, or ``None`` when ``host`` is not one."""
    match = _ECR_HOST.fullmatch(host.lower())
    if match is None:
        return None
    return match["account"], match["region"]


def is_ecr_target(config: Config) -> bool:
    """True when the target registry is ECR: an ECR host, or an ``ecr:`` endpoint is configured."""
    ecr = config.ecr
    if parse_registry_host(config.target_registry) is not None:
        return True
    return bool(ecr.registry_url or ecr.endpoint_url or ecr.registry_id)


@dataclass(frozen=True, slots=True)
class EcrLocation:
    """Which account and region the target lives in, and where its registry API answers."""

    account: str | None
    region: str | None
    registry_url: str | None  # None: use the proxy endpoint that the authorization token names


def locate(config: Config) -> EcrLocation:
    """Account and region from ``ecr:`` settings first, else from the target registry host."""
    parsed = parse_registry_host(config.target_registry)
    account = config.ecr.registry_id or (parsed[0] if parsed else None)
    region = config.ecr.region or (parsed[1] if parsed else None)
    return EcrLocation(account, region, config.ecr.registry_url)


def make_client(config: Config) -> ECRClient:
    """A boto3 ECR client from the default credential chain, for the target's region and endpoint."""
    import boto3  # type: ignore[import-untyped]

    location = locate(config)
    try:
        # A session of its own: the credential chain is read now, not taken from an earlier client.
        session = boto3.session.Session()
        client: ECRClient = session.client("ecr", region_name=location.region, endpoint_url=config.ecr.endpoint_url)
    except NoRegionError as exc:
        raise AwsError(
            "no AWS region: set ecr.region in mirror/config.yml, use an ECR target registry host "
            "(ACCOUNT.dkr.ecr.REGION.amazonaws.com), or set AWS_REGION"
        ) from exc
    return client


@dataclass(frozen=True, slots=True)
class RegistryLogin:
    """Basic-auth credentials for the registry API; ``password`` never appears in a repr."""

    username: str
    password: str = field(repr=False)
    registry_url: str
    expires_at: float


def public_read_policy() -> str:
    statement = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": list(PUBLIC_READ_ACTIONS),
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, indent=2)


class Ecr:
    """Registry login and repository management for one ECR registry."""

    def __init__(
        self,
        client: ECRClient,
        settings: EcrConfig,
        location: EcrLocation,
        *,
        log: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        mask: bool = False,
    ) -> None:
        self.client = client
        self.settings = settings
        self.location = location
        self.log = sys.stdout if log is None else log
        self.clock = clock
        self.mask = mask  # ask the Actions runner to hide the token (only a runner reads ::add-mask::)
        self._login: RegistryLogin | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self.created: list[str] = []
        self.token_requests = 0

    # -- registry login -------------------------------------------------------------------------------------

    def login(self) -> RegistryLogin:
        """Current registry credentials, fetched once and refreshed before they expire."""
        with self._lock:
            now = self.clock()
            login = self._login
            if login is not None:
                fresh = now < login.expires_at - REFRESH_MARGIN_SECONDS
                if fresh or now - self._fetched_at < MIN_REFRESH_INTERVAL_SECONDS:
                    return login
            return self.refresh()

    def refresh(self) -> RegistryLogin:
        """Fetch a new authorization token (``ecr:GetAuthorizationToken``) and mask it in the log."""
        kwargs: dict[str, Any] = {}
        if self.location.account:
            kwargs["registryIds"] = [self.location.account]
        response = self._call(
            "GetAuthorizationToken", "log in to the registry", self.client.get_authorization_token, **kwargs
        )
        self.token_requests += 1
        data = response.get("authorizationData") or []
        if not data or "authorizationToken" not in data[0]:
            raise AwsError("ecr:GetAuthorizationToken returned no token; check the registry id (ecr.registry_id)")
        item = data[0]
        token = item["authorizationToken"]
        # Only the Actions runner reads ::add-mask::; anywhere else the command would print the secret itself.
        in_actions = self.mask
        if in_actions:
            actions.mask(token, self.log)
        try:
            username, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AwsError("ecr:GetAuthorizationToken returned a token that is not base64 'user:password'") from exc
        if in_actions:
            actions.mask(password, self.log)
        remember(token, password, announce=False)  # masked just now; never shown
        registry_url = self.location.registry_url or item.get("proxyEndpoint") or self._derived_url()
        if not registry_url:
            raise AwsError("ECR named no registry endpoint; set ecr.registry_url in mirror/config.yml")
        expires = item.get("expiresAt")
        expires_at = expires.timestamp() if isinstance(expires, datetime) else float(expires or 0)
        if "://" not in registry_url:
            registry_url = f"https://{registry_url}"
        self._login = RegistryLogin(username, password, registry_url.rstrip("/"), expires_at)
        self._fetched_at = self.clock()
        return self._login

    def _derived_url(self) -> str | None:
        account, region = self.location.account, self.location.region
        return f"https://{registry_host(account, region)}" if account and region else None

    @property
    def registry_host(self) -> str:
        """``host[:port]`` of the registry API that images are pushed to."""
        url = self.location.registry_url or self.login().registry_url
        return urlsplit(url if "://" in url else f"https://{url}").netloc

    # -- repositories ---------------------------------------------------------------------------------------

    def ensure_repository(self, name: str) -> bool:
        """Create repository ``name`` with the configured settings unless it exists; True when created.

        Idempotent: an existing repository (made by an earlier run or by hand) is left as it is.
        """
        if name in self._known:
            return False
        settings = self.settings
        kwargs: dict[str, Any] = {
            "repositoryName": name,
            "imageTagMutability": settings.tag_mutability,
            "imageScanningConfiguration": {"scanOnPush": settings.scan_on_push},
            "encryptionConfiguration": {"encryptionType": settings.encryption},
        }
        if settings.encryption == "KMS" and settings.kms_key:
            kwargs["encryptionConfiguration"]["kmsKey"] = settings.kms_key
        if settings.tags:
            kwargs["tags"] = [{"Key": key, "Value": value} for key, value in settings.tags]
        if self.location.account:
            kwargs["registryId"] = self.location.account
        try:
            self.client.create_repository(**kwargs)
        except ClientError as exc:
            if _code(exc) == "RepositoryAlreadyExistsException":
                self._known.add(name)
                return False
            action = "ecr:TagResource" if settings.tags and "TagResource" in str(exc) else "ecr:CreateRepository"
            raise aws_error(exc, action, f"create repository {name}") from exc
        except BotoCoreError as exc:
            raise aws_error(exc, "ecr:CreateRepository", f"create repository {name}") from exc
        self._known.add(name)
        self.created.append(name)
        if settings.public_read_policy:
            policy: dict[str, Any] = {"repositoryName": name, "policyText": public_read_policy()}
            if self.location.account:
                policy["registryId"] = self.location.account
            self._call(
                "SetRepositoryPolicy",
                f"set the public-read policy of {name}",
                self.client.set_repository_policy,
                **policy,
            )
        return True

    def _call(self, operation: str, what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, f"ecr:{operation}", what) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_BAD_CREDENTIAL_CODES = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId"}
)
_NEEDED_ACTION = re.compile(r"perform: ([a-z0-9-]+:[A-Za-z]+)")


def aws_error(exc: ClientError | BotoCoreError, action: str, what: str) -> AwsError:
    """A user-facing error for a failed AWS call, naming the IAM action when a permission is missing."""
    if isinstance(exc, NoCredentialsError):
        return AwsError(
            f"cannot {what}: no AWS credentials found. In GitHub Actions run aws-actions/configure-aws-credentials "
            "with role-to-assume (the job needs 'permissions: id-token: write'); elsewhere set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, EndpointConnectionError):
        return AwsError(f"cannot {what}: the ECR API endpoint cannot be reached ({exc}); check ecr.endpoint_url/region")
    if isinstance(exc, BotoCoreError):
        return AwsError(f"cannot {what}: {exc}")
    code = _code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")).strip()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _DENIED_CODES or "AccessDenied" in message or (status == 403 and code not in _BAD_CREDENTIAL_CODES):
        named = _NEEDED_ACTION.search(message)
        needed = named.group(1) if named else action
        return AwsError(
            f"cannot {what}: permission denied; the AWS identity needs the IAM action {needed} "
            "(see the IAM policy in the README)"
        )
    if code in _BAD_CREDENTIAL_CODES:
        return AwsError(f"cannot {what}: AWS refused the credentials ({code}); check or renew them")
    return AwsError(f"cannot {what}: {action} failed: {code}: {message}")


class EcrCredentials(Credentials):
    """Registry credentials where the ECR host always gets the current token (refreshed when due)."""

    def __init__(self, ecr: Ecr, host: str, base: Credentials | None = None) -> None:
        base = base or Credentials()
        logins = {name: login for name in base.hosts() if (login := base.get(name)) is not None}
        super().__init__(logins)
        self.ecr = ecr
        self.ecr_host = normalize_host(host)

    def get(self, host: str) -> Login | None:
        if normalize_host(host) == self.ecr_host:
            login = self.ecr.login()
            return Login(login.username, login.password)
        return super().get(host)


# Registry API requests and the IAM action ECR checks for each (used to explain a 401/403 from the registry).
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


_DENIED_REQUEST = re.compile(r"\b(HEAD|GET|PUT|POST|PATCH|DELETE) (https?://[^\s:]+(?::[0-9]+)?)(/\S*): (401|403)\b")


def explain_denied(reason: str, registry_url: str) -> str:
    """Add to a copy failure what ECR wants when its registry refused a request (a 403 names the IAM action)."""
    match = _DENIED_REQUEST.search(reason)
    if match is None or urlsplit(match.group(2)).netloc != urlsplit(registry_url).netloc:
        return reason
    if match.group(4) == "401":
        return reason + " (ECR refused the authorization token: expired, or issued for another registry id)"
    action = registry_action(match.group(1), match.group(3).split("?", 1)[0])
    return reason + f" (the AWS identity needs the IAM action {action} on this repository)"


# -- wiring for commands that copy into the target --------------------------------------------------------------


@dataclass
class TargetClient:
    """A registry client for a run, and the hook that prepares each target (ECR: create the repository)."""

    client: RegistryClient
    ecr: Ecr | None = None

    def prepare(self, target: Target) -> None:
        if self.ecr is not None:
            self.ecr.ensure_repository(target.repository)

    def explain(self, reason: str) -> str:
        """A failure message, with the IAM action or token problem when ECR's registry refused a request."""
        if self.ecr is None:
            return reason
        return explain_denied(reason, self.ecr.login().registry_url)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> TargetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_target_client(args: argparse.Namespace, config: Config, *, log: TextIO | None = None) -> TargetClient:
    """The client the command options ask for; for an ECR target also the login and repository creation.

    The ECR registry host is sent to ``ecr.registry_url`` (or the token's proxy endpoint) and always gets the
    current token, refreshed before it expires.
    """
    from bot.registry.factory import ClientOptions, allowed_hosts

    options = ClientOptions.from_args(args)
    if not is_ecr_target(config):
        return TargetClient(options.build(config))
    ecr = Ecr(make_client(config), config.ecr, locate(config), log=log, mask=args.settings.in_actions)
    login = ecr.login()  # fails early, naming the IAM action, before anything is copied
    host = config.target_registry
    if normalize_host(host) not in {normalize_host(name) for name in options.endpoints}:
        options = replace(options, endpoints={**options.endpoints, host: login.registry_url})
    # Source registries keep their credentials (docker config.json, REGISTRY_AUTH_<HOST>_* variables).
    base = Credentials.from_environment(options.environ, hosts=allowed_hosts(config))
    client = options.build(config, credentials=EcrCredentials(ecr, host, base))
    return TargetClient(client, ecr)
