"""The Link protocol: what the runtime and the adapters need from a packet device.

A link carries whole IPv4 packets as bytes. It is deliberately tiny so that
adapters stack: a TUN device, an in-memory pair, a fault injector, a pcap
tap (docs/architecture.md, "Link API").
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Link(Protocol):
    mtu: int
    tso: bool  # accepts super-segments larger than the MTU

    def send(self, packet: bytes) -> None:
        """Put one IPv4 packet on the link."""
        ...

    def recv(self) -> bytes | None:
        """The next packet that has arrived, or None when nothing is waiting (non-blocking)."""
        ...

    def fileno(self) -> int:
        """A file descriptor for ``loop.add_reader``; -1 for in-memory links."""
        ...


@runtime_checkable
class TimedLink(Link, Protocol):
    """A link that holds packets until a time (e.g. a delaying fault injector).

    The runtime calls ``poll(now)`` when ``now >= next_deadline()`` and then
    drains ``recv()`` as if the file descriptor had become readable.
    """

    def next_deadline(self) -> float | None:
        ...

    def poll(self, now: float) -> None:
        ...
