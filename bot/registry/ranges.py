"""Blob downloads that survive broken connections and fill long, lossy links: ``Range`` requests.

A download that breaks off continues from the last byte received (``Range: bytes=N-``), its sha256 carried
on, inside the stream that feeds the upload, so a fault on the source side never breaks the upload. The
answer is trusted only when it is ``206`` with exactly the ``Content-Range`` asked for (RFC 9110, section 14.4:
https://www.rfc-editor.org/rfc/rfc9110#name-content-range). A registry or CDN that ignores ranges answers
``200`` with the whole blob: the bytes already delivered are read again and dropped, so the upload still goes
on. A ``206`` for another range is not trusted: the host is downloaded whole from then on.

One TCP stream over a lossy long link is capped far below the link (about MSS / (RTT * sqrt(loss))), so a blob
whose one stream proves slow fetches the rest as several ranges at once (:class:`PartedReader`), delivered in
order; on a fast link (or loopback) a blob keeps its one stream, which costs the least. "Slow" is the source's
pace alone: below :attr:`TransferSettings.slow_stream` bytes per second of time spent waiting for the source,
over at least ``probe_seconds`` of it. A download held back by a slow upload (the target across the long link)
waits on its consumer, not on the source, so it keeps its one stream. The probe goes on for the whole download,
and a blob goes parted only while the source host has stream slots to spare (:class:`SpareStreams`): while
every slot is busy more streams would only share the same link, and when transfers finish near the end of a
run the slow ones left split their rest across the freed slots instead of trickling on alone. A blob other
images wait for (a shared base layer they will mount) is on every one's path: it splits, and runs its parts,
even when no slot is spare. Parts are at most ``part_size`` and smaller for a small rest (down to
:data:`MIN_PART`), so that a 2 MB layer can still be spread. Only the parts ahead of the one being delivered are
held in memory, and the run holds at most :attr:`TransferSettings.buffer_bytes` of them in all.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from bot.errors import RegistryError
from bot.registry.client import BlobStream, RegistryClient
from bot.registry.transfer import TransferSettings
from bot.registry.transport import gave_up

# A broken try that delivered at least this much starts the count of tries again: a link that resets every
# connection after some MB still gets a blob of any size through, while a source that breaks off after a few
# KB every time is given up after ``attempts`` tries.
PROGRESS = 1024 * 1024
MIN_PART = 256 * 1024  # the smallest range worth a request of its own
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def range_matches(header: str | None, start: int, end: int, size: int) -> bool:
    """Is ``header`` the ``Content-Range`` of bytes ``start``..``end`` (inclusive) of a ``size``-byte blob?"""
    match = _CONTENT_RANGE.match((header or "").strip())
    if match is None:
        return False
    first, last, total = match.groups()
    return int(first) == start and int(last) == end and total in ("*", str(size))


class SpareStreams(Protocol):
    """The source host's stream slots beyond the one a blob holds (:class:`bot.registry.streams.StreamLimit`)."""

    def spare(self) -> int:
        """Slots free now with nobody waiting for one."""
        ...

    def try_acquire(self) -> bool:
        """Take a free slot without waiting; False when there is none to spare."""
        ...

    def release(self) -> None: ...


class _Unbounded:
    """No stream bound (a reader used outside a :class:`~bot.registry.copy.Copier`): parts are bounded by
    ``parts`` and the buffer alone."""

    def spare(self) -> int:
        return 1 << 30

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


@dataclass(slots=True)
class DownloadStats:
    """What the source sent for one blob: every body byte received (dropped ones too) and the resumes."""

    received: int = 0
    resumes: int = 0
    restarts: int = 0  # the source answered a range with the whole blob (or a range we could not trust)


class SourceReader:
    """The bytes of one blob from ``start`` on, in order, verified against its digest at the end.

    ``hasher`` is the sha256 of the bytes before ``start``; ``offset`` is the next byte to deliver. A body
    that breaks off is continued with a ``Range`` request; ``attempts`` broken tries in a row give up (the
    error is final then). A digest mismatch is temporary: the caller starts the blob over.
    """

    def __init__(
        self,
        client: RegistryClient,
        host: str,
        repository: str,
        digest: str,
        size: int,
        *,
        start: int = 0,
        hasher: hashlib._Hash | None = None,
        attempts: int = 5,
        settings: TransferSettings | None = None,
        buffer: threading.Semaphore | None = None,
        stats: DownloadStats | None = None,
        cut_every: int | None = None,
        streams: SpareStreams | None = None,
        urgent: Callable[[], bool] = lambda: False,
    ) -> None:
        self.client = client
        self.streams: SpareStreams = streams or _Unbounded()
        # Other images wait for this blob (a shared base layer): it splits, and its parts run, without spare slots.
        self.urgent = urgent
        self.host, self.repository, self.digest, self.size = host, repository, digest, size
        self.offset = start
        self.hasher = hasher or hashlib.sha256()
        self.attempts = max(1, attempts)
        self.settings = settings or TransferSettings()
        self.buffer = buffer
        self.stats = stats or DownloadStats()
        # Chunks never straddle a multiple of ``cut_every``; ``marks`` keeps the sha256 at the last one passed.
        self.cut_every = cut_every
        self.marks: dict[int, hashlib._Hash] = {}

    def __iter__(self) -> Iterator[bytes]:
        yield from self._deliver(self._sequential(probe=self._parted()))
        if self.offset < self.size:  # one stream proved slow: the rest as parallel ranges
            yield from self._deliver(PartedReader(self).chunks())
            yield from self._deliver(self._sequential(probe=False))
        if self.offset != self.size:
            message = f"blob {self.digest}: received {self.offset} bytes, expected {self.size}"
            raise RegistryError(message, temporary=True)
        algorithm, _, expected = self.digest.partition(":")
        if algorithm == "sha256" and self.hasher.hexdigest() != expected:
            raise RegistryError(f"blob {self.digest}: the content does not match its digest", temporary=True)

    def _deliver(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        cut = self.cut_every
        for chunk in chunks:
            if self.offset + len(chunk) > self.size:
                raise RegistryError(f"blob {self.digest} is larger than the {self.size} bytes its descriptor says")
            if cut and (self.offset + len(chunk)) // cut > self.offset // cut:
                # Crosses a chunk boundary of the upload: split there and keep the sha256 state at it.
                first = cut - self.offset % cut
                for piece in (chunk[:first], chunk[first:]):
                    if piece:
                        yield self._take(piece)
                        if self.offset % cut == 0:
                            self.marks = {self.offset: self.hasher.copy()}
                continue
            yield self._take(chunk)

    def _take(self, chunk: bytes) -> bytes:
        self.hasher.update(chunk)
        self.offset += len(chunk)
        return chunk

    def _parted(self) -> bool:
        """May the rest of this blob go as ranges (its size, the settings, the host)?"""
        settings = self.settings
        return (
            settings.parts > 1
            and self.size >= settings.parted_from
            and self.size - self.offset >= 2 * min(MIN_PART, settings.part_size)
            and self.host not in self.client.whole_blob_hosts
        )

    def _may_spread(self) -> bool:
        return self.streams.spare() > 0 or self.urgent()

    def part_size(self) -> int:
        """``part_size``, or less so that a small rest still spreads over ``parts`` ranges (not under
        :data:`MIN_PART` unless ``part_size`` is)."""
        settings = self.settings
        rest = self.size - self.offset
        spread = -(-rest // settings.parts)
        return min(settings.part_size, max(spread, MIN_PART))

    def _sequential(self, *, probe: bool) -> Iterator[bytes]:
        """From ``offset`` to the end over one connection at a time, resuming where a body broke off. With
        ``probe``, stop early once the source has proved slow and the host has a stream slot to spare (see the
        module docstring): the caller fetches the rest as parallel ranges."""
        failures = 0
        pace = _Pace()
        while self.offset < self.size:
            start = self.offset
            try:
                with self._open(start) as stream:
                    skip = start if stream.status == 200 else 0
                    chunks = iter(stream)
                    while (received := pace.read(chunks)) is not None:
                        self.stats.received += len(received)
                        dropped = min(skip, len(received))  # bytes delivered before, sent again
                        skip -= dropped
                        if dropped < len(received):
                            yield received[dropped:]
                        if probe and pace.slow(self.settings) and self._parted() and self._may_spread():
                            return
                if self.offset < self.size:
                    raise RegistryError(
                        f"downloading {self.digest}: the body ended after {self.offset} of {self.size} bytes",
                        temporary=True,
                    )
            except RegistryError as exc:
                if not exc.temporary:
                    raise
                failures = 0 if self.offset - start >= PROGRESS else failures + 1
                if failures >= self.attempts:
                    raise gave_up(exc, failures) from exc
                self.client.transport.pause(max(failures, 1))
                self.stats.resumes += 1

    def _open(self, start: int) -> BlobStream:
        """A stream of the blob from ``start`` (or whole, status 200, when the host does not do ranges)."""
        client, host = self.client, self.host
        if start == 0 or host in client.whole_blob_hosts:
            if start:
                self.stats.restarts += 1
            return client.get_blob_part(host, self.repository, self.digest, 0)
        stream = client.get_blob_part(host, self.repository, self.digest, start)
        if stream.status == 206 and range_matches(stream.content_range, start, self.size - 1, self.size):
            return stream
        if stream.status != 200:  # a 206 of another range: not trusted, this host is read whole from now on
            stream.close()
            client.whole_blob_hosts.add(host)
            stream = client.get_blob_part(host, self.repository, self.digest, 0)
        self.stats.restarts += 1
        return stream


class _Pace:
    """Bytes received and the time spent waiting for them (not the time the consumer held the stream)."""

    __slots__ = ("bytes", "seconds")

    def __init__(self) -> None:
        self.bytes = 0
        self.seconds = 0.0

    def read(self, chunks: Iterator[bytes]) -> bytes | None:
        """The next chunk (``None`` at the end), its bytes and the wait for it counted."""
        began = time.monotonic()
        chunk = next(chunks, None)
        self.seconds += time.monotonic() - began
        if chunk is not None:
            self.bytes += len(chunk)
        return chunk

    def slow(self, settings: TransferSettings) -> bool:
        return self.seconds >= settings.probe_seconds and self.bytes < settings.slow_stream * self.seconds


class _NoRanges(Exception):
    """The source answered a part with something other than exactly the range asked for."""


class _Part:
    """One range being downloaded; its chunks wait here until delivered."""

    def __init__(self, start: int, end: int, slot: threading.Semaphore | None, stream: SpareStreams | None) -> None:
        self.start, self.end = start, end  # inclusive
        self.slot = slot  # the buffer slot this part holds, released when it is delivered or dropped
        self.stream = stream  # the host's stream slot this part's download holds, released when it ends
        self.chunks: deque[bytes] = deque()
        self.done = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def put(self, chunk: bytes) -> None:
        with self.cond:
            self.chunks.append(chunk)
            self.cond.notify()

    def finish(self, error: BaseException | None = None) -> None:
        with self.cond:
            self.done, self.error = True, error
            self.cond.notify()

    def take(self) -> bytes | None:
        """The next chunk, ``None`` at the end; raises the error the download ended with."""
        with self.cond:
            while not self.chunks and not self.done:
                self.cond.wait()
            if self.chunks:
                return self.chunks.popleft()
            if self.error is not None:
                raise self.error
            return None

    def release(self) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()

    def release_stream(self) -> None:
        with self.cond:
            stream, self.stream = self.stream, None
        if stream is not None:
            stream.release()


class PartedReader:
    """Downloads the rest of a :class:`SourceReader`'s blob as ranges, up to ``parts`` at once, in order.

    The part being delivered streams through on the blob's own stream slot; parts ahead need a slot of the
    run-wide ``buffer`` and a spare stream slot of the host (both taken without waiting, so a busy run just
    downloads fewer parts at once, and more as slots free up). When the source does not answer a range
    exactly, the host is marked and the reader stops; the :class:`SourceReader` goes on from the last byte
    delivered, one connection at a time.
    """

    def __init__(self, reader: SourceReader) -> None:
        self.reader = reader
        size, part = reader.size, reader.part_size()
        self._pending = deque((start, min(start + part, size) - 1) for start in range(reader.offset, size, part))
        self._parts: deque[_Part] = deque()
        self._stop = threading.Event()

    def chunks(self) -> Iterator[bytes]:
        reader = self.reader
        pool = ThreadPoolExecutor(reader.settings.parts, thread_name_prefix="part")
        try:
            self._fill(pool, head=True)
            while self._parts:
                part = self._parts[0]
                while True:
                    try:
                        chunk = part.take()
                    except _NoRanges:
                        reader.client.whole_blob_hosts.add(reader.host)
                        return
                    if chunk is None:
                        break
                    yield chunk
                    self._fill(pool)
                part.release()
                self._parts.popleft()
                self._fill(pool, head=not self._parts)
        finally:
            self._stop.set()
            for part in self._parts:
                part.release()
                part.release_stream()  # a part never started gives its slot back here; a running one also does
            pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self, pool: ThreadPoolExecutor, *, head: bool = False) -> None:
        """Start parts while there are slots: the head part needs none (it streams straight through)."""
        settings, streams = self.reader.settings, self.reader.streams
        while self._pending and len(self._parts) < settings.parts:
            slot, stream = self.reader.buffer, None
            if head or not self._parts:
                slot = None
            else:
                if slot is None or not slot.acquire(blocking=False):
                    return
                if streams.try_acquire():
                    stream = streams
                elif not self.reader.urgent():
                    slot.release()
                    return
            start, end = self._pending.popleft()
            part = _Part(start, end, slot, stream)
            self._parts.append(part)
            pool.submit(self._fetch, part)
            head = False

    def _fetch(self, part: _Part) -> None:
        reader = self.reader
        got = 0
        failures = 0
        length = part.end - part.start + 1
        try:
            while got < length and not self._stop.is_set():
                first = part.start + got
                try:
                    with reader.client.get_blob_part(
                        reader.host, reader.repository, reader.digest, first, part.end
                    ) as stream:
                        if stream.status != 206 or not range_matches(
                            stream.content_range, first, part.end, reader.size
                        ):
                            raise _NoRanges
                        for chunk in stream:
                            if self._stop.is_set():
                                return
                            reader.stats.received += len(chunk)
                            if got + len(chunk) > length:
                                raise _NoRanges
                            got += len(chunk)
                            part.put(chunk)
                    if got < length:
                        raise RegistryError(f"downloading {reader.digest}: a part ended early", temporary=True)
                except RegistryError as exc:
                    if not exc.temporary:
                        raise
                    failures = 0 if part.start + got - first >= PROGRESS else failures + 1
                    if failures >= reader.attempts:
                        raise gave_up(exc, failures) from exc
                    reader.client.transport.pause(max(failures, 1))
                    reader.stats.resumes += 1
        except BaseException as exc:  # handed to the thread that delivers the part
            part.release_stream()
            part.finish(exc)
            return
        part.release_stream()
        part.finish()


def new_buffer(settings: TransferSettings) -> threading.Semaphore:
    """The run-wide slots for parts downloaded ahead (:attr:`TransferSettings.buffer_bytes`)."""
    return threading.BoundedSemaphore(settings.buffer_parts)
