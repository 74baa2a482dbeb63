"""Find the image fields of parsed documents (pure: plain dicts, lists and strings).

Each finder yields :class:`ImageSite` (one string field) or :class:`HelmImage` (a Helm values
``image: {registry, repository, tag, digest}`` map) with the path of keys and indexes that leads to it, so
the same finders serve the file rewriter (which edits text) and the webhook (which writes a JSONPatch).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

Path = tuple[str | int, ...]

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# Where each workload kind keeps its pod spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Kinds not listed above (Argo Rollouts and similar custom resources) usually follow the Deployment shape.
_FALLBACK_POD_SPEC = ("spec", "template", "spec")


class FileKind(Enum):
    KUBERNETES = "kubernetes"
    HELM = "helm"
    COMPOSE = "compose"
    ECS = "ecs"


@dataclass(frozen=True, slots=True)
class ImageSite:
    """A string field holding a whole image reference."""

    path: Path
    value: str


@dataclass(frozen=True, slots=True)
class HelmImage:
    """A Helm values image map; ``registry`` and ``tag`` are ``None`` when the key is absent or null."""

    path: Path
    repository: str
    registry: str | None
    tag: str | None
    digest: str | None

    @property
    def image(self) -> str:
        """The reference the chart will render (``registry/repository:tag@digest``)."""
        text = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


Site = ImageSite | HelmImage


def _get(node: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def pod_spec_sites(spec: Any, path: Path) -> Iterator[ImageSite]:
    """The image of every container, init container and ephemeral container of a pod spec."""
    if not isinstance(spec, Mapping):
        return
    for list_name in CONTAINER_LISTS:
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if isinstance(container, Mapping):
                image = container.get("image")
                if isinstance(image, str):
                    yield ImageSite((*path, list_name, index, "image"), image)


def kubernetes_sites(doc: Any, path: Path = ()) -> Iterator[ImageSite]:
    """Images of one Kubernetes object, or of every item of a ``List``."""
    if not isinstance(doc, Mapping):
        return
    kind = doc.get("kind")
    items = doc.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for index, item in enumerate(items):
            yield from kubernetes_sites(item, (*path, "items", index))
        return
    keys = _POD_SPEC_PATHS.get(kind, _FALLBACK_POD_SPEC) if isinstance(kind, str) else _FALLBACK_POD_SPEC
    yield from pod_spec_sites(_get(doc, keys), (*path, *keys))


def compose_sites(doc: Any) -> Iterator[ImageSite]:
    """``services.<name>.image`` of a docker compose file."""
    services = _get(doc, ("services",))
    if not isinstance(services, Mapping):
        return
    for name, service in services.items():
        image = _get(service, ("image",))
        if isinstance(image, str):
            yield ImageSite(("services", str(name), "image"), image)


def ecs_sites(doc: Any) -> Iterator[ImageSite]:
    """``containerDefinitions[].image`` of an ECS task definition (as registered or as described)."""
    for prefix in ((), ("taskDefinition",)):
        definitions = _get(doc, (*prefix, "containerDefinitions"))
        if isinstance(definitions, list):
            for index, definition in enumerate(definitions):
                image = _get(definition, ("image",))
                if isinstance(image, str):
                    yield ImageSite((*prefix, "containerDefinitions", index, "image"), image)


def _is_image_key(key: object) -> bool:
    return isinstance(key, str) and (key == "image" or (key.endswith("Image") and len(key) > len("Image")))


def _optional_string(node: Mapping[str, Any], key: str) -> str | None:
    value = node.get(key)
    return value if isinstance(value, str) and value != "" else None


def helm_sites(node: Any, path: Path = (), seen: frozenset[int] = frozenset()) -> Iterator[Site]:
    """Image strings and image maps anywhere in a Helm values file (keys ``image`` and ``…Image``)."""
    if isinstance(node, (Mapping, list)):
        if id(node) in seen:  # a YAML alias can make a structure contain itself
            return
        seen = seen | {id(node)}
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = (*path, str(key))
            if _is_image_key(key):
                if isinstance(value, str) and value:
                    yield ImageSite(child, value)
                    continue
                if isinstance(value, Mapping) and isinstance(value.get("repository"), str):
                    yield HelmImage(
                        child,
                        value["repository"],
                        _optional_string(value, "registry"),
                        _optional_string(value, "tag"),
                        _optional_string(value, "digest"),
                    )
                    continue
            yield from helm_sites(value, child, seen)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from helm_sites(item, (*path, index), seen)


def detect_kind(docs: Sequence[Any]) -> FileKind:
    """Guess the file kind from its content; ``--type`` overrides the guess."""
    mappings = [doc for doc in docs if isinstance(doc, Mapping)]
    if any(next(ecs_sites(doc), None) is not None for doc in mappings):
        return FileKind.ECS
    if any("apiVersion" in doc and "kind" in doc for doc in mappings):
        return FileKind.KUBERNETES
    if any(isinstance(doc.get("services"), Mapping) for doc in mappings):
        return FileKind.COMPOSE
    return FileKind.HELM


def find_sites(kind: FileKind, doc: Any) -> Iterator[Site]:
    if kind is FileKind.KUBERNETES:
        yield from kubernetes_sites(doc)
    elif kind is FileKind.COMPOSE:
        yield from compose_sites(doc)
    elif kind is FileKind.ECS:
        yield from ecs_sites(doc)
    else:
        yield from helm_sites(doc)
