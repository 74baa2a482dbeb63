"""An in-memory upstream for the validate-pr use case: image facts and tag lists without a registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from bot.errors import NotFound
from bot.reference import Reference
from bot.validate import ImageFacts


class RecordingUpstream:
    """An in-memory upstream: images by canonical reference, tags by repository; records every call."""

    def __init__(
        self,
        images: dict[str, ImageFacts] | None = None,
        tags: dict[str, list[str]] | None = None,
        delay: float = 0.0,
        errors: dict[str, Exception] | None = None,
    ) -> None:
        self.images = images or {}
        self.repo_tags = tags or {}
        self.delay = delay
        self.errors = errors or {}
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def _enter(self, name: str) -> None:
        with self.lock:
            self.calls.append(name)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        if name in self.errors:
            raise self.errors[name]

    def inspect(self, ref: Reference) -> ImageFacts:
        self._enter(ref.canonical())
        facts = self.images.get(ref.canonical())
        if facts is None:
            raise NotFound(f"{ref}: manifest unknown", status=404)
        return facts

    def tags(self, ref: Reference) -> Sequence[str]:
        self._enter(ref.canonical_name)
        tags = self.repo_tags.get(ref.canonical_name)
        if tags is None:
            raise NotFound(f"{ref}: repository unknown", status=404)
        return tags


def facts(size: int = 10_000_000, platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")) -> ImageFacts:
    return ImageFacts("sha256:" + "a" * 64, platforms, size)
