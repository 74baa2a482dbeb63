"""Source -> target path rules and their reverse (pure).

A rule maps a source (``host`` or ``host/path/prefix``) to a target path prefix. A prefix matches whole host
and path components only (``gcr.io`` never matches ``gcr.io.evil.com``; ``quay.io/calico`` never matches
``quay.io/calicoctl``), and when several rules match, the longest source wins. A reference whose registry no
rule covers is refused: the rules are also the allow-list of registries the bot will ever contact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from bot.addresses import internal_kind
from bot.config import Config, Rule
from bot.errors import MappingError, Refusal, TargetNameError
from bot.reference import DOCKER_HUB, Reference, fold_host, format_reference, parse_reference


@dataclass(frozen=True, slots=True)
class Target:
    """Where an image lives in the mirror: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return format_reference(self.name, self.tag, self.digest)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    host: str
    prefix: tuple[str, ...]
    target: tuple[str, ...]


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: a typo is one or two edits away, another account ID in an ECR host is not."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _components(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


@dataclass(frozen=True, slots=True)
class NameProblem:
    """A mirror path the target cannot hold: which ``rule`` (named as the target's documentation names it),
    what is wrong, the fix, and which ``part`` of the reference is at fault (``"repository"`` or ``"tag"``)."""

    rule: str
    message: str
    fix: str
    part: str = "repository"


# A target kind's naming rules (bot.targets.base.TargetKind.name_problem).
NameCheck = Callable[[Target], NameProblem | None]


class Mapper:
    """Applies the configured rules, the deny list and, when given, the target's naming rules."""

    def __init__(self, config: Config, naming: NameCheck | None = None) -> None:
        self.config = config
        self.naming = naming
        self.registry = config.target_registry
        self.prefix = _components(config.target_prefix)
        compiled = []
        for rule in config.rules:
            host, _, prefix = rule.source.partition("/")
            compiled.append(_CompiledRule(rule, fold_host(host), _components(prefix), _components(rule.target)))
        self._rules = tuple(compiled)
        self.hosts = frozenset(rule.host for rule in self._rules)
        self._hints: dict[str, str] = {}  # unknown host -> its "did you mean" hint
        self._aliases = tuple(
            tuple((fold_host(host), _components(prefix)) for host, _, prefix in (m.partition("/") for m in group))
            for group in config.aliases
        )

    def upstream_key(self, ref: Reference) -> tuple[str, str]:
        """``(registry, repository)`` of ``ref``'s upstream, the same for every declared alias (``aliases:``):
        ``registry.k8s.io/pause`` and ``k8s.gcr.io/pause`` share one key."""
        parts = _components(ref.repository)
        for index, group in enumerate(self._aliases):
            for host, prefix in group:
                if ref.host == host and parts[: len(prefix)] == prefix:
                    return (f"aliases[{index}]", "/".join(parts[len(prefix) :]))
        return (ref.host, ref.repository)

    def same_upstream(self, a: Reference, b: Reference) -> bool:
        """Do ``a`` and ``b`` name one upstream image tag (the same source, or declared aliases)?"""
        return self.upstream_key(a) == self.upstream_key(b) and a.effective_tag == b.effective_tag

    def rule_for(self, ref: Reference) -> _CompiledRule:
        """The longest rule covering ``ref``, or :class:`MappingError` naming the registry and the fix."""
        host = ref.host
        best: _CompiledRule | None = None
        for rule in self._rules:
            if rule.host != host:
                continue
            if rule.prefix and _components(ref.repository)[: len(rule.prefix)] != rule.prefix:
                continue
            if best is None or len(rule.prefix) > len(best.prefix):
                best = rule
        if best is None:
            raise MappingError(self._unknown_registry_message(ref), reference=str(ref))
        return best

    def _unknown_registry_message(self, ref: Reference) -> str:
        host = ref.host
        covered = sorted({rule.host for rule in self._rules if rule.host == host})
        if covered:
            prefixes = sorted("/".join((rule.host, *rule.prefix)) for rule in self._rules if rule.host == host)
            return (
                f"no mirror rule covers {ref.canonical_name}; rules for {host} cover only "
                + ", ".join(prefixes)
                + "; add a rule under 'rules:' in mirror/config.yml to allow it"
            )
        internal = internal_kind(host)
        if internal is not None:
            return (
                f"registry {host} is not allowed: it is {internal}, and the mirror copies only public "
                "images from the registries named under 'rules:' in mirror/config.yml; write the image's public "
                "registry instead"
            )
        hint = self._hints.get(host)
        if hint is None:  # once per host: a pod or a list may name thousands of images of one registry
            close = sorted((_edit_distance(host, known), known) for known in self.hosts)
            hint = f"did you mean {close[0][1]}? Otherwise " if close and close[0][0] <= 2 else ""
            self._hints[host] = hint
        return (
            f"registry {host} is not allowed; {hint}ask the maintainers to add a rule "
            f"'- {{source: {host}, target: <path prefix>}}' under 'rules:' in mirror/config.yml"
        )

    def check_denied(self, ref: Reference) -> None:
        if not self.config.deny:
            return  # the common case, and a hot path over a 74k-line mirrored list
        names = (ref.canonical_name, ref.canonical())
        for entry in self.config.deny:
            if any(fnmatchcase(name, entry.pattern) for name in names):
                raise MappingError(
                    f"{ref.canonical_name} is on the deny list ({entry.pattern}): {entry.reason}",
                    reference=str(ref),
                    refusal=Refusal.DENIED,
                )

    def target(self, ref: Reference) -> Target:
        """The exact mirror location of ``ref``; raises :class:`MappingError` for unknown or denied images."""
        rule = self.rule_for(ref)
        self.check_denied(ref)
        # A rule with a path prefix matches the API name (``library/`` included); without one the path is
        # kept as written, as the original service did.
        rest = _components(ref.repository)[len(rule.prefix) :] if rule.prefix else _components(ref.path)
        repository = "/".join((*self.prefix, *rule.target, *rest))
        target = Target(self.registry, repository, ref.effective_tag, ref.digest)
        problem = self.naming(target) if self.naming is not None else None
        if problem is not None:
            raise TargetNameError(
                f"{problem.message}, against the {problem.rule}",
                reference=str(ref),
                rule=problem.rule,
                part=problem.part,
                fix=problem.fix,
            )
        return target

    def is_target(self, ref: Reference) -> bool:
        """True when ``ref`` already points into the mirror registry."""
        return ref.registry is not None and ref.registry.lower() == self.registry.lower()

    def source(self, target: str) -> Reference:
        """Reverse a target (``[registry/]path[:tag][@digest]``) to the source reference it mirrors.

        Of several rules with the same target prefix, the first in config order wins (``registry.k8s.io``
        before ``k8s.gcr.io``); the longest matching target prefix wins overall.
        """
        ref = parse_reference(target)
        if ref.registry is not None and ref.registry.lower() != self.registry.lower():
            raise MappingError(
                f"not in the mirror registry {self.registry}", reference=target, refusal=Refusal.NOT_IN_MIRROR
            )
        components = _components(ref.path)
        if components[: len(self.prefix)] != self.prefix:
            raise MappingError(
                f"not under the mirror prefix {'/'.join(self.prefix)}", reference=target, refusal=Refusal.NOT_IN_MIRROR
            )
        components = components[len(self.prefix) :]
        best: _CompiledRule | None = None
        for rule in self._rules:
            matches = components[: len(rule.target)] == rule.target and len(components) > len(rule.target)
            if matches and (best is None or len(rule.target) > len(best.target)):
                best = rule
        if best is None:
            raise MappingError("no mirror rule produces this path", reference=target, refusal=Refusal.NOT_IN_MIRROR)
        rest = components[len(best.target) :]
        registry = None if best.host == DOCKER_HUB else best.host
        return Reference(registry, "/".join((*best.prefix, *rest)), ref.tag, ref.digest)
