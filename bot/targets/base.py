"""What every target kind provides: its naming rules, its login, how it prepares a repository for a push and
how it explains a refusal.

A kind is chosen once per run from the config (:func:`bot.targets.kind_for`); commands that write (``sync``,
``daily``, ``copy``) open a :class:`TargetSession` through it and never ask which kind they hold. A new kind
(Harbor, Alibaba ACR, Artifact Registry) is one module implementing :class:`TargetKind`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, TextIO

from bot.errors import Failure
from bot.registry.models import MOUNT_ANY
from bot.rules import NameProblem, Target

__all__ = ["NameProblem", "TargetKind", "TargetSession"]

if TYPE_CHECKING:
    from bot.registry.auth import Credentials
    from bot.registry.client import RegistryClient
    from bot.registry.factory import ClientOptions


class TargetSession:
    """An open target for one run: the registry client, and the hooks the copy calls.

    This base is a plain OCI registry: nothing to prepare (pushing creates the repository), nothing to add to
    a refusal, mounts from any repository of the run.
    """

    mount_policy = MOUNT_ANY

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def prepare(self, target: Target) -> None:
        """Make ``target`` ready for a push; called before any blob of that image moves, never in a dry run.

        Raises a :class:`~bot.errors.BotError` that fails that image alone (its message says why and the fix).
        """

    def explain(self, failure: Failure) -> str | None:
        """What this kind of registry wants when it refused a request (``None``: nothing to add)."""
        return None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> TargetSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TargetKind(Protocol):
    """One kind of target registry."""

    label: str  # how messages name the kind: "ECR", "OCI registry"

    def name_problem(self, target: Target) -> NameProblem | None:
        """Why the target cannot hold ``target`` (pure: no request), or ``None``."""
        ...

    def open(
        self,
        options: ClientOptions,
        credentials: Credentials,
        *,
        extra_hosts: Iterable[str] = (),
        log: TextIO | None = None,
        mask: bool = False,
    ) -> TargetSession:
        """Log in (failing early, with the fix, when that is impossible) and return the session of a run.

        ``credentials`` hold the logins of every registry of the run (sources included); a kind adds its own,
        masking what it mints in the log when ``mask`` (in Actions).
        """
        ...
