"""The internet checksum (RFC 1071) and the TCP pseudo-header (RFC 9293 §3.1).

The one's complement sum of 16-bit big-endian words is congruent, modulo
0xffff, to the whole buffer read as one big-endian integer (2**16 = 1 mod
0xffff). ``int.from_bytes`` plus one ``%`` therefore runs in C and is several
times faster than a ``struct`` loop. Sums of pieces may be added as plain
ints as long as every piece starts at an even offset.
"""

from __future__ import annotations

from tcpstack.wire.addr import addr_wire

_from_bytes = int.from_bytes
# Up to this size the buffer is read as one integer. Above it, as four: the
# division by 0xffff costs more per byte than reading the bytes, and four
# quarter-size integers add up to one only a few bits longer than a quarter.
_SPLIT = 512


def ones_sum(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """Unfolded sum of ``data[start:end]`` as 16-bit words (odd length padded with a zero byte).

    Words are aligned on ``start``. Only the value modulo 0xffff, and whether
    it is zero, are meaningful. Slicing here, not before the call, saves a
    copy of the whole range.
    """
    if end is None:
        end = len(data)
    n = end - start
    if n <= _SPLIT:
        whole = _from_bytes(data[start:end], "big")
        return whole << 8 if n & 1 else whole
    quarter = (n >> 3) << 1  # even: every piece starts on a word boundary
    b = start + quarter
    c = b + quarter
    d = c + quarter
    tail = _from_bytes(data[d:end], "big")
    return (_from_bytes(data[start:b], "big") + _from_bytes(data[b:c], "big")
            + _from_bytes(data[c:d], "big") + (tail << 8 if n & 1 else tail))


def fold(total: int) -> int:
    """One's complement 16-bit value of an unfolded sum, as end-around carry gives it.

    A non-zero sum never folds to 0 (it folds to 0xffff, "negative zero").
    """
    r = total % 0xFFFF
    if r:
        return r
    return 0xFFFF if total else 0


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """RFC 1071 checksum of ``data``: the complement of the folded sum.

    ``initial`` is an unfolded sum to include (e.g. ``pseudo_header_sum(...)``).
    """
    return 0xFFFF - fold(initial + ones_sum(data))


def checksum_ok(total: int) -> bool:
    """True if an unfolded sum over data *including* its checksum field verifies."""
    return total % 0xFFFF == 0 and total != 0


def pseudo_header_sum(src: str, dst: str, proto: int, length: int) -> int:
    """Unfolded sum of the IPv4 pseudo-header: src, dst, zero, protocol, length.

    RFC 9293 §3.1 (TCP checksum) and RFC 768 share this pseudo-header.
    """
    return addr_wire(src)[1] + addr_wire(dst)[1] + proto + length
