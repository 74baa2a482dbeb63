"""Load what the webhook decides with, and reload it when its files change.

Requests never wait for a file or the network: a background thread polls the files' identity (inode, size,
modification time, which also catches Kubernetes' symlink swap of a mounted ConfigMap or Secret), loads a new
snapshot when one changes and swaps it in with one assignment. A snapshot that fails to load is logged and
the previous one stays in service.
"""

from __future__ import annotations

import gzip
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from bot.config import DEFAULT_CONFIG_PATH, Config, load_config
from bot.errors import BotError, WebhookError
from bot.lists import MAX_LIST_BYTES, ListKind, MirroredIndex, parse_list
from bot.rewrite.policy import Mode, Policy
from bot.rules import Mapper
from bot.webhook.log import Log
from bot.webhook.patch import Settings

Fingerprint = tuple[tuple[int, int, int] | None, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sources:
    """The files the settings come from, and the command-line overrides applied on every load."""

    mirrored: Path
    config: Path | None = None
    registry: str | None = None
    mode: str | None = None
    namespace: str | None = None  # the webhook's own namespace, always excluded

    @property
    def paths(self) -> tuple[Path, ...]:
        # Without --config, mirror/config.yml is read when it exists, so it is watched too.
        return (self.mirrored, self.config or DEFAULT_CONFIG_PATH)


def read_mirrored(path: Path) -> MirroredIndex:
    """The mirrored list, plain or gzip-compressed (a ConfigMap holds at most 1 MiB)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                data = stream.read(MAX_LIST_BYTES + 1)
        else:
            data = path.read_bytes()
    except FileNotFoundError:
        raise WebhookError(f"{path}: mirrored list not found; mount mirrored-images.txt and pass --mirrored") from None
    except (OSError, EOFError) as exc:
        raise WebhookError(f"{path}: cannot read the mirrored list: {exc}") from exc
    return MirroredIndex(parse_list(data, str(path), ListKind.MIRRORED).entries)


def load_settings(sources: Sources) -> Settings:
    """Settings from the files, with the command-line overrides applied."""
    config: Config = load_config(sources.config)
    if sources.registry:
        config = config.with_target_registry(sources.registry)
    index = read_mirrored(sources.mirrored)
    mode = Mode(sources.mode or config.webhook.mode)
    excluded = set(config.webhook.exclude_namespaces)
    if sources.namespace:
        excluded.add(sources.namespace)
    policy = Policy(Mapper(config), index, mode)
    return Settings(policy, frozenset(excluded), config.webhook.opt_out_key)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (cert, key):
        if not path.is_file():
            raise WebhookError(f"{path}: certificate file not found; pass --cert and --key")
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise WebhookError(f"{cert}, {key}: cannot load the certificate and key: {exc}") from exc
    return context


def fingerprint(paths: Sequence[Path]) -> Fingerprint:
    prints: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            prints.append(None)
            continue
        prints.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(prints)


class Watched(Generic[T]):
    """One value loaded from files; ``reload_if_changed`` replaces it when the files change."""

    def __init__(self, name: str, paths: Sequence[Path], load: Callable[[], T], log: Log) -> None:
        self.name = name
        self.paths = tuple(paths)
        self._load = load
        self._log = log
        self._print = fingerprint(self.paths)
        self.value: T = load()  # a failure here stops start-up with the error

    def reload_if_changed(self) -> bool:
        current = fingerprint(self.paths)
        if current == self._print:
            return False
        self._print = current
        try:
            self.value = self._load()
        except (BotError, OSError, ValueError) as exc:
            self._log.error("reload failed; still serving the previous version", what=self.name, error=str(exc))
            return False
        self._log.info("reloaded", what=self.name, files=[str(path) for path in self.paths])
        return True


class Reloader(threading.Thread):
    """Polls the watched files every ``interval`` seconds."""

    def __init__(self, watched: Sequence[Watched[Any]], interval: float) -> None:
        super().__init__(name="reloader", daemon=True)
        self.watched = tuple(watched)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            for item in self.watched:
                item.reload_if_changed()

    def stop(self) -> None:
        self.stopped.set()
