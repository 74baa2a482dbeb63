"""A kustomization ``images:`` block that points images at the mirror (pure).

kustomize's image transformer matches images by name and swaps the name, then the tag or the digest. So an
entry is safe only when every use of that name is mirrored: a name that some use keeps as written gets no
entry (it would send that use to a path the mirror lacks), and a name used with several tags or digests gets
an entry without a tag, keeping each as written. The ``kustomize`` command and the pull request comment both
build their block here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.reference import Reference


@dataclass(frozen=True, slots=True)
class Use:
    """One use of an image: the reference as written, and its mirror name (``None``: it stays as written)."""

    ref: Reference
    new_name: str | None


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One kustomize ``images:`` entry."""

    name: str
    new_name: str
    new_tag: str | None = None
    digest: str | None = None
    note: str = ""

    def yaml(self, indent: str = "", *, note: bool = True) -> str:
        lines = [f"{indent}- name: {self.name}", f"{indent}  newName: {self.new_name}"]
        if self.digest is not None:
            lines.append(f"{indent}  digest: {self.digest}")
        elif self.new_tag is not None:
            lines.append(f'{indent}  newTag: "{self.new_tag}"')
        if note and self.note:
            lines[0] += f"  # {self.note}"
        return "\n".join(lines) + "\n"


def images_block(entries: Iterable[ImageEntry], indent: str = "", *, notes: bool = True) -> str:
    """``images:`` and its entries, as YAML; ``indent`` goes before each entry; ``notes`` adds the comments."""
    return "images:\n" + "".join(entry.yaml(indent, note=notes) for entry in entries)


def image_entries(
    uses: Iterable[Use], pinned: Callable[[Reference], str | None] | None = None
) -> tuple[list[ImageEntry], list[str]]:
    """The entries for ``uses``, sorted by name, and the names that got none because a use stays as written.

    ``pinned`` gives the mirrored digest of a reference without one, to pin the entry to it.
    """
    by_name: dict[str, list[Use]] = {}
    for use in uses:
        by_name.setdefault(use.ref.name, []).append(use)
    entries: list[ImageEntry] = []
    blocked: list[str] = []
    for name in sorted(by_name):
        named = by_name[name]
        new_names = {use.new_name for use in named}
        if None in new_names:
            blocked.append(name)
            continue
        new_name = min(name for name in new_names if name is not None)
        refs = {use.ref for use in named}
        if len(refs) > 1:
            tags = ", ".join(sorted(str(ref.tag or ref.digest or "latest") for ref in refs))
            entries.append(ImageEntry(name, new_name, note=f"tags kept as written: {tags}"))
            continue
        ref = next(iter(refs))
        digest = ref.digest if ref.digest is not None or pinned is None else pinned(ref)
        entries.append(ImageEntry(name, new_name, ref.effective_tag, digest))
    return entries, blocked
