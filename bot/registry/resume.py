"""One blob from the source into the target, resuming on both sides instead of starting over.

The download side is a :class:`~bot.registry.ranges.SourceReader`: a broken body continues with a ``Range``
request inside the stream that feeds the upload, so the upload never notices.

The upload side: a blob up to :attr:`TransferSettings.upload_chunk` bytes goes up in one ``PUT``, as before
(one round trip; nothing worth resuming). A larger one goes up as ``PATCH`` chunks of that size, each with its
``Content-Range``, then an empty ``PUT ?digest=`` (the OCI distribution spec's chunked upload:
https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-a-blob-in-chunks). When a chunk
fails, the registry is asked how much the session holds (``GET`` on the session, ``204`` with
``Range: 0-<last>``, same page, "Resuming an upload"); when that is exactly the chunks it acknowledged, the
upload continues there, the source read again from that byte with the sha256 state kept at it. Otherwise
(the registry forgot the session or holds part of the failed chunk, as distribution 2.8 does after a cut
request: observed, it answers ``404 BLOB_UPLOAD_INVALID``) the blob starts over, as before.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Generator, Iterator

from bot.errors import RegistryError
from bot.registry.client import RegistryClient
from bot.registry.models import Descriptor
from bot.registry.ranges import DownloadStats, SourceReader, SpareStreams
from bot.registry.transfer import TransferSettings
from bot.registry.transport import gave_up


class BlobTransfer:
    """Copy ``blob`` from ``source`` (host, repository) to ``target``; see the module docstring.

    ``on_chunk`` is called with the size of every chunk handed to the upload, and with a negative size when
    the upload rewinds to a resumed offset; :attr:`sent` is what the target got and kept so far. Errors are
    the source's or target's :class:`RegistryError`; a temporary one means: start the blob over.
    """

    def __init__(
        self,
        client: RegistryClient,
        source: tuple[str, str],
        target: tuple[str, str],
        blob: Descriptor,
        *,
        settings: TransferSettings,
        attempts: int = 5,
        buffer: threading.Semaphore | None = None,
        on_chunk: Callable[[int], None] = lambda _n: None,
        stats: DownloadStats | None = None,
        streams: SpareStreams | None = None,
        urgent: Callable[[], bool] = lambda: False,
    ) -> None:
        self.client = client
        self.streams = streams
        self.urgent = urgent
        self.source, self.target, self.blob = source, target, blob
        self.settings = settings
        self.attempts = max(1, attempts)
        self.buffer = buffer
        self.on_chunk = on_chunk
        self.stats = stats or DownloadStats()
        self.sent = 0
        self.upload_resumes = 0

    def run(self, upload_url: str | None = None) -> None:
        blob = self.blob
        host, repository = self.target
        if blob.size <= self.settings.upload_chunk:
            chunks = self._counted(self._reader(0, hashlib.sha256()))
            self.client.upload_blob(host, repository, blob.digest, blob.size, chunks, upload_url=upload_url)
            return
        self._chunked(upload_url or self.client.start_upload(host, repository))

    def _reader(self, start: int, hasher: hashlib._Hash) -> SourceReader:
        host, repository = self.source
        return SourceReader(
            self.client,
            host,
            repository,
            self.blob.digest,
            self.blob.size,
            start=start,
            hasher=hasher,
            attempts=self.attempts,
            settings=self.settings,
            buffer=self.buffer,
            stats=self.stats,
            cut_every=self.settings.upload_chunk,
            streams=self.streams,
            urgent=self.urgent,
        )

    def _counted(self, chunks: Iterator[bytes] | SourceReader) -> Generator[bytes]:
        for chunk in chunks:
            self.sent += len(chunk)
            self.on_chunk(len(chunk))
            yield chunk

    def _chunked(self, url: str) -> None:
        host, repository = self.target
        size, step = self.blob.size, self.settings.upload_chunk
        acked = 0  # bytes the registry acknowledged
        hasher = hashlib.sha256()
        failures = 0
        while True:
            reader = self._reader(acked, hasher)
            chunks = self._counted(reader)
            try:
                while acked < size:
                    length = min(step, size - acked)
                    url = self.client.upload_chunk(host, repository, url, acked, length, _exactly(chunks, length))
                    acked += length
                    hasher = reader.marks.get(acked, reader.hasher).copy()
                    failures = 0
                # The last chunk's bytes were all taken: the stream checks size and digest once drained.
                for _ in chunks:
                    raise RegistryError(f"blob {self.blob.digest} is larger than its descriptor says")
                self.client.finish_upload(host, repository, url, self.blob.digest)
                return
            except RegistryError as exc:
                chunks.close()
                if exc.method != "PATCH" or not exc.temporary:
                    raise
                failures += 1
                resumed = self._held(url, acked) if acked else None
                if resumed is None:
                    raise  # the registry cannot continue this session: the blob starts over
                if failures >= self.attempts:
                    raise gave_up(exc, failures) from exc
                self.client.transport.pause(failures)
                url = resumed
                self.upload_resumes += 1
                self.on_chunk(acked - self.sent)
                self.sent = acked

    def _held(self, url: str, acked: int) -> str | None:
        """The URL to continue the session at when the registry holds exactly ``acked`` bytes, else ``None``."""
        host, repository = self.target
        try:
            status = self.client.upload_status(host, repository, url)
        except RegistryError:
            return None
        if status is None or status[0] != acked:
            return None
        return status[1]


def _exactly(chunks: Iterator[bytes], length: int) -> Iterator[bytes]:
    """The next ``length`` bytes of ``chunks``, which never straddle the end (the reader cuts there)."""
    left = length
    while left > 0:
        chunk = next(chunks, None)
        if chunk is None:
            return
        left -= len(chunk)
        yield chunk
