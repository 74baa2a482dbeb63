"""How blobs move: ranged download parts, the memory they may hold, upload chunks (see :mod:`bot.registry.ranges`
and :mod:`bot.registry.resume`)."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """How blobs move: ranged parts for downloads, chunks for resumable uploads.

    - ``part_size``: bytes per ranged download part (less for a small rest); a blob of at least ``parted_from``
      bytes whose source delivered less than ``slow_stream`` bytes per second of waiting, over at least
      ``probe_seconds`` of it, downloads the rest as up to ``parts`` ranges at once while the host has stream
      slots to spare (``parts`` 1 turns this off; see :mod:`bot.registry.ranges`).
    - ``buffer_bytes``: parts downloaded ahead of the one being delivered, run-wide, stay below this.
    - ``upload_chunk``: blobs larger than this go up as ``PATCH`` chunks of this size, so a broken upload can
      continue where the registry says it stopped. ECR refuses parts under 5 MiB but the last
      (``LayerPartTooSmallException``, "Layer parts must be at least 5 MiB in size":
      https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_UploadLayerPart.html).

    Memory: the parts ahead of the one being delivered hold at most ``buffer_bytes`` in the whole run (each
    part in flight is at most ``part_size``); everything else streams through in chunks of 1 MiB at most.
    """

    part_size: int = 1 * MiB
    parts: int = 8
    parted_from: int = 1 * MiB
    buffer_bytes: int = 64 * MiB
    upload_chunk: int = 64 * MiB
    slow_stream: float = 2 * MiB  # bytes/s: a blob's one stream slower than this ...
    probe_seconds: float = 1.0  # ... over this long goes on as parallel ranges

    def __post_init__(self) -> None:
        if self.part_size < 1 or self.parts < 1 or self.upload_chunk < 5 * MiB:
            raise ValueError("part size and parts must be positive, upload chunks at least 5 MiB")

    @property
    def buffer_parts(self) -> int:
        return max(1, self.buffer_bytes // self.part_size)
