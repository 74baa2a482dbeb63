"""What the bot takes from its environment, read once by ``bot/cli.py`` and passed to what needs it (pure).

Nothing below the command line reads ``os.environ``: a function that needs a setting takes :class:`Settings`
(or the one value it needs), so tests pass settings instead of patching the process environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# A config file to use instead of discovering mirror/config.yml (after --config).
CONFIG_ENV = "MIRROR_CONFIG"
# Debug output (bot/debug.py): this variable set to a true word, or GitHub's RUNNER_DEBUG=1 (a re-run with
# debug logging).
DEBUG_ENV = "MIRROR_DEBUG"
_TRUE = frozenset({"1", "true", "yes", "on"})
# Registry credentials: ``MIRROR_AUTH_<HOST>_USERNAME`` / ``_PASSWORD`` (see bot/registry/auth.py).
REGISTRY_AUTH_PREFIX = "MIRROR_AUTH_"
# Variables that give boto3's default chain credentials of the job's own (for private ECR sources).
AWS_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")


@dataclass(frozen=True, slots=True)
class Settings:
    """The environment of a run. Secrets are left out of ``repr``."""

    config_path: str = ""  # MIRROR_CONFIG
    debug: bool = False  # MIRROR_DEBUG or RUNNER_DEBUG
    in_actions: bool = False  # GITHUB_ACTIONS=true: the runner reads workflow commands from the log
    github_repository: str = ""  # GITHUB_REPOSITORY, owner/name
    github_token: str = field(default="", repr=False)  # GITHUB_TOKEN
    github_api_url: str = ""  # GITHUB_API_URL; empty: api.github.com
    event_path: str = ""  # GITHUB_EVENT_PATH: the JSON of the event that started the workflow
    output_path: str = ""  # GITHUB_OUTPUT: step outputs
    summary_path: str = ""  # GITHUB_STEP_SUMMARY: the job summary
    pod_namespace: str = ""  # POD_NAMESPACE: the webhook's own namespace (downward API)
    # AWS credentials of the job itself (boto3's default chain finds them): keys, a profile or a web identity.
    aws_credentials: bool = False
    # DOCKER_CONFIG and every MIRROR_AUTH_* variable, as the registry credentials read them.
    registry_environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            config_path=environ.get(CONFIG_ENV, ""),
            debug=environ.get(DEBUG_ENV, "").lower() in _TRUE or environ.get("RUNNER_DEBUG") == "1",
            in_actions=environ.get("GITHUB_ACTIONS") == "true",
            github_repository=environ.get("GITHUB_REPOSITORY", ""),
            github_token=environ.get("GITHUB_TOKEN", ""),
            github_api_url=environ.get("GITHUB_API_URL", ""),
            event_path=environ.get("GITHUB_EVENT_PATH", ""),
            output_path=environ.get("GITHUB_OUTPUT", ""),
            summary_path=environ.get("GITHUB_STEP_SUMMARY", ""),
            pod_namespace=environ.get("POD_NAMESPACE", ""),
            aws_credentials=any(environ.get(name) for name in AWS_CREDENTIAL_ENV),
            registry_environ={
                key: value
                for key, value in environ.items()
                if key == "DOCKER_CONFIG" or key.startswith(REGISTRY_AUTH_PREFIX)
            },
        )
