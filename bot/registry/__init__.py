"""Registry access, layered like go-containerregistry: transport -> client -> copy engine.

- :mod:`bot.registry.auth`: credentials (docker config.json, environment, added at run time) and tokens
- :mod:`bot.registry.transport`: endpoints, auth challenge, retries, redirects, structured errors
- :mod:`bot.registry.client`: manifests, tags, blobs, uploads and mounts
- :mod:`bot.registry.copy`: the copy engine and :func:`~bot.registry.copy.inspect`
"""

from bot.registry.auth import Credentials
from bot.registry.client import RegistryClient
from bot.registry.copy import Copier, CopyOutcome, CopyResult, ImageInfo, ImageLocation, copy_image, inspect
from bot.registry.factory import allowed_hosts, build_client
from bot.registry.models import Descriptor, Manifest, Platform
from bot.registry.transport import Transport, TransportSettings

__all__ = [
    "Copier",
    "CopyOutcome",
    "CopyResult",
    "Credentials",
    "Descriptor",
    "ImageInfo",
    "ImageLocation",
    "Manifest",
    "Platform",
    "RegistryClient",
    "Transport",
    "TransportSettings",
    "allowed_hosts",
    "build_client",
    "copy_image",
    "inspect",
]
