"""The ECR API over boto3: registry tokens, repositories created on demand, tag mutability, IAM-aware errors.

Credentials come from boto3's default chain (environment, profiles, the web-identity role that
``aws-actions/configure-aws-credentials`` sets up) for the target, and from ``ecr.sources`` (a profile or a
role) for private ECR registries the rules read from; nothing here reads keys itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from bot.config import EcrConfig, EcrSourceConfig
from bot.errors import AwsError
from bot.github import actions
from bot.redact import remember

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

# Pull access that the original service granted to everyone on every repository.
PUBLIC_READ_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")

# Tokens live 12 hours; one is replaced this long before it expires.
REFRESH_MARGIN_SECONDS = 15 * 60
# ... but never more often than this, so a token that is already expired when handed out (as a local ECR
# emulator does) cannot make every request fetch a new one.
MIN_REFRESH_INTERVAL_SECONDS = 10 * 60
# A token this young is not renewed after a refusal: it has not expired, so the refusal means something else.
MIN_RENEW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class EcrLocation:
    """Which account and region a registry lives in, and where its registry API answers."""

    account: str | None
    region: str | None
    registry_url: str | None  # None: use the proxy endpoint that the authorization token names


def make_client(location: EcrLocation, endpoint_url: str | None, source: EcrSourceConfig | None = None) -> ECRClient:
    """A boto3 ECR client for ``location``'s region: the default credential chain, or for a source registry
    the profile and role of ``ecr.sources``."""
    import boto3  # type: ignore[import-untyped]

    try:
        # A session of its own: the credential chain is read now, not taken from an earlier client.
        session = boto3.session.Session(profile_name=source.profile if source else None)
        if source is not None and source.role_arn:
            session = _assumed(session, source.role_arn, location.region)
        client: ECRClient = session.client("ecr", region_name=location.region, endpoint_url=endpoint_url)
    except NoRegionError as exc:
        raise AwsError(
            "no AWS region: set ecr.region in mirror/config.yml, use an ECR target registry host "
            "(ACCOUNT.dkr.ecr.REGION.amazonaws.com), or set AWS_REGION"
        ) from exc
    except BotoCoreError as exc:  # an unknown profile, a malformed config file
        raise AwsError(f"cannot set up AWS credentials for {location.account or 'ECR'}: {exc}") from exc
    return client


def _assumed(session: Any, role_arn: str, region: str | None) -> Any:
    """A session with the temporary credentials of ``role_arn``, assumed with ``session``'s identity."""
    import boto3

    try:
        sts = session.client("sts", region_name=region)
        credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="image-mirror-bot")["Credentials"]
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, "sts:AssumeRole", f"assume the source role {role_arn}") from exc
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


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
        self._mutability: dict[str, tuple[bool, tuple[str, ...]]] = {}
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

    def renew(self, refused_password: str, *, said_expired: bool = True) -> RegistryLogin | None:
        """A new token after the registry refused ``refused_password``; one fetch for all the threads that saw
        the same refusal (a late one gets the token another already fetched). A refusal that gave no reason
        (``said_expired`` false: a HEAD) renews only a token older than :data:`MIN_RENEW_SECONDS`, else
        ``None``: a young token has not expired, so the refusal means something else."""
        with self._lock:
            login = self._login
            if login is not None and login.password != refused_password:
                return login
            young = login is not None and self.clock() - self._fetched_at < MIN_RENEW_SECONDS
            if young and not said_expired:
                return None
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
        from bot.targets.ecr import registry_host

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
        self._mutability[name] = (settings.tag_mutability == "IMMUTABLE", ())
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

    def tag_immutable(self, name: str, tag: str) -> bool:
        """Are the tags of repository ``name`` immutable, ``tag`` included (``ecr:DescribeRepositories``, once
        per repository; an ``IMMUTABLE_WITH_EXCLUSION`` filter may exempt the tag)?"""
        immutable, exclusions = self._tag_mutability(name)
        return immutable and not any(fnmatchcase(tag, pattern) for pattern in exclusions)

    def _tag_mutability(self, name: str) -> tuple[bool, tuple[str, ...]]:
        """(immutable, tag patterns excluded from it), learned once per repository."""
        known = self._mutability.get(name)
        if known is not None:
            return known
        kwargs: dict[str, Any] = {"repositoryNames": [name]}
        if self.location.account:
            kwargs["registryId"] = self.location.account
        try:
            repositories = self.client.describe_repositories(**kwargs).get("repositories") or []
        except ClientError as exc:
            if _code(exc) == "RepositoryNotFoundException" or _code(exc) in _DENIED_CODES:
                return False, ()  # unknown: the push goes ahead, as it did before this check
            raise aws_error(exc, "ecr:DescribeRepositories", f"read the settings of repository {name}") from exc
        except BotoCoreError as exc:
            raise aws_error(exc, "ecr:DescribeRepositories", f"read the settings of repository {name}") from exc
        repository: dict[str, Any] = dict(repositories[0]) if repositories else {}
        mutability = str(repository.get("imageTagMutability") or "MUTABLE")
        filters = repository.get("imageTagMutabilityExclusionFilters") or []
        exclusions = tuple(str(item.get("filter", "")) for item in filters if item.get("filter"))
        # IMMUTABLE_WITH_EXCLUSION: immutable but for the excluded tags; MUTABLE_WITH_EXCLUSION the reverse,
        # which the bot treats as mutable (it never writes a tag it did not copy from upstream anyway).
        result = (mutability.startswith("IMMUTABLE"), exclusions if mutability == "IMMUTABLE_WITH_EXCLUSION" else ())
        self._mutability[name] = result
        return result

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
