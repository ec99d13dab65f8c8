"""A byte queue that keeps other people's bytes instead of copying them: the
send queue (bytes from SND.UNA) and the receive queue (bytes not yet read).

The queue is a list of chunks, not one flat buffer. An immutable chunk
(``bytes``, or a read-only view of ``bytes``) is kept by reference: a 1 MiB
write costs no copy, and neither does a 64 KB segment read from the TUN. On
the way out ``peek`` hands out a read-only view of it, so a segment's payload
reaches the link (``os.writev``) without a copy in Python, and ``take_into``
copies straight into the reader's memory — the one copy a socket makes.
Anything mutable is copied once on the way in, since its owner may reuse it
as soon as ``append`` returns. Pieces under ``GATHER_BELOW`` bytes are
gathered into one ``bytearray`` chunk, so a stream of small writes or
segments does not become a long list.

(A flat ``bytearray`` copied every chunk in and, with bytes consumed at the
front and appended at the back, reallocated and moved the whole 4 MiB queue
every few hundred KB.)
"""

from __future__ import annotations

from bisect import bisect_right

Chunk = bytes | bytearray | memoryview

GATHER_BELOW = 4096       # pieces shorter than this are gathered into one chunk
GATHER_LIMIT = 65536      # ... until it holds this much
_COMPACT_AFTER = 64       # consumed chunks kept before the lists are compacted
_VIEW_FROM = 512          # a shorter piece of a bytes chunk is copied: cheaper than a view


class ByteQueue:
    """Bytes appended at the back, read anywhere (``peek``), dropped or taken
    from the front. ``capacity`` bounds what ``append`` accepts."""

    __slots__ = ("_chunks", "_first", "_front", "_starts", "capacity", "nbytes")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: list[Chunk] = []
        self._starts: list[int] = []     # stream offset of each chunk's first byte
        self._first = 0                  # index of the chunk holding the front
        self._front = 0                  # stream offset of the front (bytes consumed)
        self.nbytes = 0                  # bytes queued: len(), without a Python call

    def __len__(self) -> int:
        return self.nbytes

    def __bool__(self) -> bool:
        return self.nbytes > 0

    def space(self) -> int:
        return max(0, self.capacity - self.nbytes)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as fits; return how many bytes were taken."""
        room = self.capacity - self.nbytes
        if room <= 0:
            return 0
        n = data.nbytes if type(data) is memoryview else len(data)
        if not n:
            return 0
        if n > room:
            view = memoryview(data)
            if view.format != "B" or not view.c_contiguous:
                view = memoryview(bytes(view))
            data = view[:room]
            n = room
        chunks = self._chunks
        if n >= GATHER_BELOW:
            chunk = _immutable(data)
        elif self.nbytes:
            last = chunks[-1]
            if type(last) is bytearray and len(last) < GATHER_LIMIT:
                last += data                    # the one copy
                self.nbytes += n
                return n
            chunk = bytearray(data)             # later small pieces join it
        else:
            # Into an empty queue (a request, a reply): bytes as they are.
            chunk = data if type(data) is bytes else bytearray(data)
        chunks.append(chunk)
        self._starts.append(self._front + self.nbytes)
        self.nbytes += n
        return n

    def peek(self, offset: int, size: int) -> bytes | memoryview:
        """``size`` bytes starting ``offset`` bytes after the front: a read-only
        view when they lie in one immutable chunk, else a copy (``bytes``).

        Nobody can change either afterwards; a view keeps only its own chunk
        alive.
        """
        if size <= 0:
            return b""
        chunks = self._chunks
        starts = self._starts
        pos = self._front + offset
        i = bisect_right(starts, pos, self._first) - 1
        chunk = chunks[i]
        start = pos - starts[i]
        stop = start + size
        if stop <= len(chunk):
            if type(chunk) is memoryview:
                return chunk[start:stop]
            if type(chunk) is bytes:
                return memoryview(chunk)[start:stop] if size > _VIEW_FROM else chunk[start:stop]
            with memoryview(chunk) as view:
                return view[start:stop].tobytes()
        parts = [memoryview(chunk)[start:]]
        left = stop - len(chunk)
        while left > 0:
            i += 1
            chunk = chunks[i]
            parts.append(memoryview(chunk)[:left])
            left -= len(chunk)
        data = b"".join(parts)
        for part in parts:
            part.release()
        return data

    def consume(self, size: int) -> None:
        """Drop ``size`` bytes from the front."""
        if size >= self.nbytes:
            self.clear()
            return
        self._front += size
        self.nbytes -= size
        front = self._front
        starts = self._starts
        first = self._first
        last = len(starts) - 1
        while first < last and starts[first + 1] <= front:
            self._chunks[first] = b""    # let go of the owner's memory now
            first += 1
        if first >= _COMPACT_AFTER and first * 2 >= len(starts):
            del self._chunks[:first]
            del starts[:first]
            first = 0
        self._first = first

    def take(self, size: int) -> bytes:
        """Remove and return up to ``size`` bytes from the front."""
        size = min(size, self.nbytes)
        if size <= 0:
            return b""
        if size == self.nbytes and len(self._chunks) == 1 and self._front == self._starts[0]:
            chunk = self._chunks[0]             # all there is, in one piece
            self.clear()
            return chunk if type(chunk) is bytes else bytes(chunk)
        data = self.peek(0, size)
        if type(data) is not bytes:
            data = data.tobytes()
        self.consume(size)
        return data

    def take_into(self, buffer: bytearray | memoryview) -> int:
        """Move bytes from the front into ``buffer``; how many (one copy each)."""
        with memoryview(buffer) as view, (
                view if view.format == "B" else view.cast("B")) as out:
            size = min(out.nbytes, self.nbytes)
            chunks = self._chunks
            i = self._first
            skip = self._front - self._starts[i] if size else 0
            done = 0
            while done < size:
                chunk = chunks[i]
                n = min(len(chunk) - skip, size - done)
                out[done:done + n] = memoryview(chunk)[skip:skip + n]
                done += n
                skip = 0
                i += 1
        self.consume(size)
        return size

    def clear(self) -> None:
        self._front += self.nbytes
        self.nbytes = 0
        self._chunks.clear()
        self._starts.clear()
        self._first = 0


def _immutable(data: bytes | bytearray | memoryview) -> Chunk:
    """``data`` itself when nobody can change it afterwards, else a copy (as bytes)."""
    if type(data) is bytes:
        return data
    if (type(data) is memoryview and data.readonly and type(data.obj) is bytes
            and data.c_contiguous):
        return data if data.format == "B" else data.cast("B")
    return bytes(data)
