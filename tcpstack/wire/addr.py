"""Dotted-quad IPv4 addresses <-> the 4 bytes on the wire, with small caches.

A stack talks to a handful of addresses, so converting through a dict is
cheaper than ``socket.inet_pton``/``inet_ntoa`` on every packet. The caches
are bounded: a flood of spoofed sources only makes them start over.
"""

from __future__ import annotations

import socket

_CACHE_LIMIT = 4096
_TO_WIRE: dict[str, tuple[bytes, int]] = {}
_TO_TEXT: dict[bytes, str] = {}


def addr_wire(addr: str) -> tuple[bytes, int]:
    """``(4 address bytes, sum of its two 16-bit words)`` for a dotted quad.

    The word sum is what the address contributes to an internet checksum.
    Raises ``ValueError`` for anything but a dotted-quad IPv4 address.
    """
    hit = _TO_WIRE.get(addr)
    if hit is not None:
        return hit
    try:
        raw = socket.inet_pton(socket.AF_INET, addr)
    except (OSError, TypeError):
        raise ValueError(f"not an IPv4 address: {addr!r}") from None
    if len(_TO_WIRE) >= _CACHE_LIMIT:
        _TO_WIRE.clear()
    hit = _TO_WIRE[addr] = (raw, (raw[0] << 8 | raw[1]) + (raw[2] << 8 | raw[3]))
    return hit


def addr_bytes(addr: str) -> bytes:
    """The 4 wire bytes of a dotted-quad address (``ValueError`` if it is not one)."""
    return addr_wire(addr)[0]


def addr_text(raw: bytes) -> str:
    """Dotted-quad text for 4 wire bytes."""
    text = _TO_TEXT.get(raw)
    if text is None:
        text = socket.inet_ntoa(raw)
        if len(_TO_TEXT) >= _CACHE_LIMIT:
            _TO_TEXT.clear()
        _TO_TEXT[raw] = text
    return text
