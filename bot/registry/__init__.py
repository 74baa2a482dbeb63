"""Registry access, layered like go-containerregistry: transport -> client -> copy engine.

- :mod:`bot.registry.auth`: credentials (docker config.json, environment, added at run time) and tokens
- :mod:`bot.registry.transport`: endpoints, auth challenge, retries, redirects, structured errors
- :mod:`bot.registry.client`: manifests, tags, blobs, uploads and mounts
- :mod:`bot.registry.copy`: the copy engine and :func:`~bot.registry.copy.inspect`
- :mod:`bot.registry.factory`: a client for a run, built from the config (the rules are the allow-list)

The names below load on first use, so commands that never talk to a registry do not import ``requests``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Credentials": "bot.registry.auth",
    "RegistryClient": "bot.registry.client",
    "Copier": "bot.registry.copy",
    "CopyOutcome": "bot.registry.copy",
    "CopyResult": "bot.registry.copy",
    "ImageInfo": "bot.registry.copy",
    "ImageLocation": "bot.registry.copy",
    "copy_image": "bot.registry.copy",
    "inspect": "bot.registry.copy",
    "allowed_hosts": "bot.registry.factory",
    "build_client": "bot.registry.factory",
    "Descriptor": "bot.registry.models",
    "Manifest": "bot.registry.models",
    "Platform": "bot.registry.models",
    "Transport": "bot.registry.transport",
    "TransportSettings": "bot.registry.transport",
}

__all__ = [  # noqa: RUF022 - grouped by module, as above
    "Credentials",
    "RegistryClient",
    "Copier",
    "CopyOutcome",
    "CopyResult",
    "ImageInfo",
    "ImageLocation",
    "copy_image",
    "inspect",
    "allowed_hosts",
    "build_client",
    "Descriptor",
    "Manifest",
    "Platform",
    "Transport",
    "TransportSettings",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
