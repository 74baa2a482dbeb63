"""AdmissionReview in, AdmissionReview out (pure).

The webhook never blocks a pod: every well-formed review is answered ``allowed: true``, with a JSONPatch only
when an image changes. On UPDATE only images that the update itself changed are considered, so relabelling an
old pod never swaps (and restarts) its containers; ephemeral containers arrive this way too, through the
``pods/ephemeralcontainers`` subresource.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.rewrite.policy import Decision, Policy, Status
from bot.rewrite.sites import CONTAINER_LISTS

API_VERSION = "admission.k8s.io/v1"
OPT_OUT_VALUES = frozenset({"false", "off", "no", "skip", "disabled"})
_POD_SUBRESOURCES = frozenset({"", "ephemeralcontainers"})
MAX_WARNING = 120


class BadReview(ValueError):
    """The request body is not an admission.k8s.io/v1 AdmissionReview."""


@dataclass(frozen=True, slots=True)
class Settings:
    policy: Policy
    exclude_namespaces: frozenset[str]
    opt_out_key: str


@dataclass(slots=True)
class Admission:
    """The answer to one review and what was decided, for the log."""

    uid: str
    namespace: str
    name: str
    operation: str
    skipped: str = ""  # why the whole pod was left alone
    patch: list[dict[str, str]] = field(default_factory=list)
    rewritten: list[Decision] = field(default_factory=list)
    kept: list[Decision] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"uid": self.uid, "allowed": True}
        if self.patch:
            answer["patchType"] = "JSONPatch"
            answer["patch"] = base64.b64encode(json.dumps(self.patch, separators=(",", ":")).encode()).decode()
        warnings = self.warnings()
        if warnings:
            answer["warnings"] = warnings
        return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": answer}

    def warnings(self) -> list[str]:
        """Shown by kubectl: which images the mirror lacks, so the user can request them."""
        missing = [d.image for d in self.kept if d.status is Status.NOT_MIRRORED]
        if not missing:
            return []
        shown = [_shorten(f"image {image} is not mirrored; pulled from its own registry") for image in missing[:3]]
        if len(missing) > 3:
            shown.append(f"{len(missing) - 3} more images are not mirrored")
        return shown


def allow(uid: str) -> dict[str, Any]:
    """An answer that changes nothing, for a review the webhook could not process."""
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": {"uid": uid, "allowed": True}}


def request_uid(review: Any) -> str | None:
    request = review.get("request") if isinstance(review, Mapping) else None
    uid = request.get("uid") if isinstance(request, Mapping) else None
    return uid if isinstance(uid, str) and uid else None


def admit(review: Any, settings: Settings) -> Admission:
    """Decide the patch for one AdmissionReview; raise :class:`BadReview` when it is not one."""
    if not isinstance(review, Mapping) or review.get("kind") != "AdmissionReview":
        raise BadReview("the body is not an AdmissionReview")
    if review.get("apiVersion") != API_VERSION:
        raise BadReview(
            f"apiVersion {review.get('apiVersion')!r} is not supported; register admissionReviewVersions: [v1]"
        )
    request = review.get("request")
    uid = request_uid(review)
    if not isinstance(request, Mapping) or uid is None:
        raise BadReview("request.uid is missing")
    operation = _string(request.get("operation"))
    namespace = _string(request.get("namespace"))
    pod = request.get("object")
    metadata = pod.get("metadata") if isinstance(pod, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = _string(metadata.get("name")) or _string(request.get("name")) or _string(metadata.get("generateName"))
    admission = Admission(uid, namespace, name, operation)

    resource = request.get("resource")
    is_pod = isinstance(resource, Mapping) and resource.get("group", "") == "" and resource.get("resource") == "pods"
    if not is_pod or _string(request.get("subResource")) not in _POD_SUBRESOURCES:
        admission.skipped = "not a pod"
    elif operation not in ("CREATE", "UPDATE"):
        admission.skipped = f"operation {operation}"
    elif namespace in settings.exclude_namespaces:
        admission.skipped = "namespace excluded"
    elif _opted_out(metadata, settings.opt_out_key):
        admission.skipped = f"opted out by {settings.opt_out_key}"
    elif not isinstance(pod, Mapping):
        admission.skipped = "no pod object"
    if admission.skipped or not isinstance(pod, Mapping):
        return admission

    spec = pod.get("spec")
    old_images = _images_by_container(request.get("oldObject")) if operation == "UPDATE" else {}
    if not isinstance(spec, Mapping):
        return admission
    for list_name in CONTAINER_LISTS:
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if not isinstance(container, Mapping):
                continue
            image = container.get("image")
            if not isinstance(image, str) or old_images.get((list_name, container.get("name"))) == image:
                continue
            decision = settings.policy.decide(image)
            if decision.rewrites:
                assert decision.target is not None
                admission.patch.append(
                    {"op": "replace", "path": f"/spec/{list_name}/{index}/image", "value": decision.target}
                )
                admission.rewritten.append(decision)
            elif decision.status is not Status.IN_MIRROR:
                admission.kept.append(decision)
    return admission


def _shorten(text: str) -> str:
    # The API server asks for warnings of at most 120 characters; a long reference is cut in the middle.
    return text if len(text) <= MAX_WARNING else text[: MAX_WARNING // 2 - 1] + "…" + text[-(MAX_WARNING // 2) :]


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opted_out(metadata: Mapping[str, Any], key: str) -> bool:
    for section in ("labels", "annotations"):
        values = metadata.get(section)
        if isinstance(values, Mapping):
            value = values.get(key)
            if isinstance(value, str) and value.strip().lower() in OPT_OUT_VALUES:
                return True
    return False


def _images_by_container(pod: Any) -> dict[tuple[str, Any], str]:
    spec = pod.get("spec") if isinstance(pod, Mapping) else None
    images: dict[tuple[str, Any], str] = {}
    if not isinstance(spec, Mapping):
        return images
    for list_name in CONTAINER_LISTS:
        containers = spec.get(list_name)
        for container in containers if isinstance(containers, list) else ():
            if isinstance(container, Mapping) and isinstance(container.get("image"), str):
                images[(list_name, container.get("name"))] = container["image"]
    return images
