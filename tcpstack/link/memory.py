"""An in-memory pair of links: what one end sends, the other receives.

For tests and for driving a stack without a device. Packets are queued as
bytes in order; nothing is lost unless the queue limit is reached (tail drop,
counted in ``overflowed``).
"""

from __future__ import annotations

import collections

DEFAULT_QUEUE_LIMIT = 100_000


class MemoryLink:
    """One end of an in-memory pair (see ``memory_pair``). ``fileno()`` is -1."""

    __slots__ = ("_inbox", "mtu", "overflowed", "peer", "queue_limit", "received", "sent", "tso")

    def __init__(self, mtu: int = 1500, tso: bool = False,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.mtu = mtu
        self.tso = tso
        self.queue_limit = queue_limit
        self.peer: MemoryLink | None = None
        self._inbox: collections.deque[bytes] = collections.deque()
        self.sent = 0
        self.received = 0
        self.overflowed = 0

    def send(self, packet: bytes) -> None:
        peer = self.peer
        if peer is None:
            raise RuntimeError("this MemoryLink is not connected; use memory_pair()")
        self.sent += 1
        if len(peer._inbox) >= peer.queue_limit:
            peer.overflowed += 1
            return
        peer._inbox.append(bytes(packet))

    def recv(self) -> bytes | None:
        if not self._inbox:
            return None
        self.received += 1
        return self._inbox.popleft()

    def pending(self) -> int:
        """Packets waiting to be received at this end."""
        return len(self._inbox)

    def fileno(self) -> int:
        return -1


def memory_pair(mtu: int = 1500, tso: bool = False,
                queue_limit: int = DEFAULT_QUEUE_LIMIT) -> tuple[MemoryLink, MemoryLink]:
    """Two connected links: ``a.send(p)`` makes ``b.recv()`` return ``p`` and vice versa."""
    a = MemoryLink(mtu, tso, queue_limit)
    b = MemoryLink(mtu, tso, queue_limit)
    a.peer, b.peer = b, a
    return a, b
