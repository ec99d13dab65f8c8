"""The send queue: bytes from SND.UNA (acknowledged bytes are dropped at the front).

``bytearray`` deletion at the front is amortised O(1) in CPython, so
consuming acknowledged data does not move the rest of the buffer.
"""

from __future__ import annotations


class SendBuffer:
    __slots__ = ("_buf", "capacity")

    def __init__(self, capacity: int) -> None:
        self._buf = bytearray()
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._buf)

    def space(self) -> int:
        return max(0, self.capacity - len(self._buf))

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as fits; return how many bytes were taken."""
        room = self.capacity - len(self._buf)
        if room <= 0:
            return 0
        n = len(data)
        if n > room:
            self._buf += memoryview(data)[:room]
            return room
        self._buf += data
        return n

    def peek(self, offset: int, size: int) -> bytes:
        """A copy of ``size`` bytes starting ``offset`` bytes after SND.UNA."""
        with memoryview(self._buf) as view:
            return view[offset:offset + size].tobytes()

    def consume(self, size: int) -> None:
        """Drop ``size`` acknowledged bytes from the front."""
        del self._buf[:size]

    def clear(self) -> None:
        self._buf.clear()
