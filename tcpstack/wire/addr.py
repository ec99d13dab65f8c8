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


_TO_WIRE6: dict[str, tuple[bytes, int]] = {}
_TO_TEXT6: dict[bytes, str] = {}


def is_ipv6(addr: str) -> bool:
    """True for IPv6 address text (it has a colon; a dotted quad never does)."""
    return ":" in addr


def addr6_wire(addr: str) -> tuple[bytes, int]:
    """``(16 address bytes, sum of its eight 16-bit words)`` for IPv6 address text.

    Raises ``ValueError`` for anything but an IPv6 address (RFC 4291 §2.2 text).
    """
    hit = _TO_WIRE6.get(addr)
    if hit is not None:
        return hit
    try:
        raw = socket.inet_pton(socket.AF_INET6, addr)
    except (OSError, TypeError, ValueError):
        raise ValueError(f"not an IPv6 address: {addr!r}") from None
    if len(_TO_WIRE6) >= _CACHE_LIMIT:
        _TO_WIRE6.clear()
    words = int.from_bytes(raw, "big")
    word_sum = 0
    while words:
        word_sum += words & 0xFFFF
        words >>= 16
    hit = _TO_WIRE6[addr] = (raw, word_sum)
    return hit


def addr6_text(raw: bytes) -> str:
    """Canonical IPv6 text (RFC 5952, as ``inet_ntop`` writes it) for 16 wire bytes."""
    text = _TO_TEXT6.get(raw)
    if text is None:
        text = socket.inet_ntop(socket.AF_INET6, raw)
        if len(_TO_TEXT6) >= _CACHE_LIMIT:
            _TO_TEXT6.clear()
        _TO_TEXT6[bytes(raw)] = text
    return text


def canonical_addr(addr: str) -> str:
    """The address as the wire layer writes it back (RFC 5952 for IPv6), so a
    string given by a person compares equal to one parsed from a packet.
    ``ValueError`` when it is neither family's address."""
    if is_ipv6(addr):
        return addr6_text(addr6_wire(addr)[0])
    return addr_text(addr_wire(addr)[0])


def any_addr_wire(addr: str) -> tuple[bytes, int]:
    """``addr6_wire`` or ``addr_wire``, by the address's family."""
    return addr6_wire(addr) if ":" in addr else addr_wire(addr)


def endpoint_text(addr: str, port: int) -> str:
    """``10.7.0.2:7001`` or ``[fd00:7::2]:7001`` (RFC 5952 §6: brackets for IPv6)."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
