"""Check a target registry through its API: every tag points at a complete image, and a mirrored list names
only what the target holds.

Usage::

    state = check_target(target)            # walks every repository and tag of the registry
    assert state.problems == []             # a tag whose index, child manifest, config or layer is missing
    assert state.tags[("src/team/app", "1")] == image.digest

    problems = check_mirrored_list(tmp_path / "mirrored-images.txt", mapper, target, state)
    assert problems == []                   # every line parses and its target tag holds the recorded digest

The walk is independent of the bot's own client: plain requests through ``tests.harness.images``. Every
manifest is fetched and hashed (its digest and the size its parent's descriptor gives must match), every
config and layer blob is fetched and hashed too (``content=False`` settles for a ``HEAD`` with the size).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import BotError
from bot.lists import ListKind, read_list
from bot.rules import Mapper
from tests.harness.images import ACCEPT_ALL, RegistryClient, sha256_digest
from tests.harness.registry import RegistryServer

_INDEX_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)


@dataclass
class TargetState:
    """What a walk found: ``(repository, tag) -> digest`` of every tag, and every problem (empty when sound)."""

    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    manifests: int = 0
    blobs: int = 0

    @property
    def images(self) -> int:
        return len(self.tags)


def repositories(client: RegistryClient) -> list[str]:
    """Every repository the registry's catalog names (following pagination)."""
    names: list[str] = []
    path = "/v2/_catalog?n=1000"
    for _ in range(1000):
        response = client.request("GET", path)
        if response.status_code != 200:
            raise AssertionError(f"GET {path}: HTTP {response.status_code} {response.text[:300]}")
        names.extend(response.json().get("repositories") or [])
        link = response.headers.get("Link", "")
        if 'rel="next"' not in link:
            return names
        path = link[link.index("<") + 1 : link.index(">")]
    raise AssertionError("the catalog never ends")


def check_target(registry: RegistryServer, *, content: bool = True) -> TargetState:
    """Walk every tag of every repository of ``registry`` down to its blobs."""
    state = TargetState()
    with RegistryClient(registry) as client:
        for repository in repositories(client):
            for tag in client.list_tags(repository):
                digest = _walk(client, repository, tag, None, state, content, f"{repository}:{tag}")
                if digest is not None:
                    state.tags[(repository, tag)] = digest
    return state


def check_image(registry: RegistryServer, repository: str, reference: str, *, content: bool = True) -> TargetState:
    """Walk one tag (or digest) of ``repository``; ``tags`` holds it when it exists."""
    state = TargetState()
    with RegistryClient(registry) as client:
        label = f"{repository}@{reference}" if reference.startswith("sha256:") else f"{repository}:{reference}"
        digest = _walk(client, repository, reference, None, state, content, label)
    if digest is not None:
        state.tags[(repository, reference)] = digest
    return state


def _walk(
    client: RegistryClient,
    repository: str,
    reference: str,
    expected: dict[str, Any] | None,
    state: TargetState,
    content: bool,
    where: str,
) -> str | None:
    """Walk one manifest; every problem starts with ``where`` (the tag walked from, then ``-> child``)."""
    response = client.get_manifest(repository, reference, accept=ACCEPT_ALL)
    if response.status_code != 200:
        state.problems.append(f"{where}: manifest missing (HTTP {response.status_code})")
        return None
    body = response.content
    digest = sha256_digest(body)
    state.manifests += 1
    header = response.headers.get("Docker-Content-Digest")
    if header is not None and header != digest:
        state.problems.append(f"{where}: Docker-Content-Digest {header} but the body hashes to {digest}")
    if expected is not None:
        if digest != expected.get("digest"):
            state.problems.append(f"{where}: manifest bytes hash to {digest}")
        if len(body) != expected.get("size"):
            state.problems.append(f"{where}: manifest is {len(body)} bytes, its descriptor says {expected.get('size')}")
    try:
        document = json.loads(body)
    except ValueError:
        state.problems.append(f"{where}: the manifest is not JSON")
        return digest
    media_type = document.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
    if media_type in _INDEX_TYPES or "manifests" in document:
        children = document.get("manifests") or []
        if not children:
            state.problems.append(f"{where}: an index without manifests")
        for child in children:
            if where.count(" -> ") > 4:
                state.problems.append(f"{where}: indexes nested too deep")
                break
            digest_text = str(child.get("digest"))
            _walk(client, repository, digest_text, child, state, content, f"{where} -> {digest_text}")
        return digest
    config = document.get("config")
    if not isinstance(config, dict):
        state.problems.append(f"{where}: an image manifest without a config")
        return digest
    for blob in [config, *(document.get("layers") or [])]:
        if blob.get("urls"):
            continue  # a foreign layer is not stored in the registry
        problem = _check_blob(client, repository, blob, content)
        state.blobs += 1
        if problem is not None:
            state.problems.append(f"{where}: {problem}")
    return digest


def _check_blob(client: RegistryClient, repository: str, blob: dict[str, Any], content: bool) -> str | None:
    digest, size = str(blob.get("digest")), blob.get("size")
    if not content:
        response = client.request("HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository)
        if response.status_code != 200:
            return f"blob {digest} missing (HTTP {response.status_code})"
        length = response.headers.get("Content-Length")
        return None if length == str(size) else f"blob {digest} is {length} bytes, not {size}"
    response = client.request("GET", f"/v2/{repository}/blobs/{digest}", repository=repository, stream=True)
    try:
        if response.status_code != 200:
            return f"blob {digest} missing (HTTP {response.status_code})"
        hashed = hashlib.sha256()
        received = 0
        for chunk in response.iter_content(1024 * 1024):
            hashed.update(chunk)
            received += len(chunk)
    finally:
        response.close()
    if received != size:
        return f"blob {digest} is {received} bytes, not {size}"
    if f"sha256:{hashed.hexdigest()}" != digest:
        return f"blob {digest}: the content hashes to sha256:{hashed.hexdigest()}"
    return None


def check_mirrored_list(
    path: Path,
    mapper: Mapper,
    registry: RegistryServer,
    state: TargetState | None = None,
    *,
    source: str | None = None,
) -> list[str]:
    """Problems with the mirrored list at ``path`` against the target (none when the file is absent).

    Every line must parse, and the tag it maps to (``mapper``) must hold the recorded digest, complete;
    ``state`` is a walk of the target already made (:func:`check_target`), else one is made here. With
    ``source`` only lines of that source registry are checked (others are ballast of another mirror).
    """
    if not path.exists():
        return []
    try:
        listing = read_list(path, ListKind.MIRRORED)
    except BotError as exc:
        return [f"{path}: {exc}"]
    state = state if state is not None else check_target(registry)
    problems = [str(problem) for problem in listing.problems]
    for entry in listing.entries:
        ref = entry.ref
        if source is not None and ref.host != source:
            continue
        if ref.digest is None:
            problems.append(f"{path}:{entry.line}: {ref} is not pinned to a digest")
            continue
        target = mapper.target(ref)
        if target.tag is None:  # an untagged line: the digest itself must be there, complete
            walked = check_image(registry, target.repository, ref.digest)
            problems.extend(f"{path}:{entry.line}: {problem}" for problem in walked.problems)
            continue
        held = state.tags.get((target.repository, target.tag))
        if held != ref.digest:
            problems.append(f"{path}:{entry.line}: {ref} is recorded, but {target} holds {held or 'nothing'}")
        problems.extend(
            f"{path}:{entry.line}: {problem}"
            for problem in state.problems
            if problem.startswith((f"{target.repository}:{target.tag}:", f"{target.repository}:{target.tag} -> "))
        )
    return problems


def mirrored_entries(path: Path) -> list[str]:
    """The references the mirrored list at ``path`` holds (empty when absent)."""
    if not path.exists():
        return []
    return [str(entry.ref) for entry in read_list(path, ListKind.MIRRORED).entries]
