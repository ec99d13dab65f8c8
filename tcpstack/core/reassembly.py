"""Out-of-order receive queue (RFC 9293 §3.10.7.4 seventh step, RFC 2018 §4).

Positions are *stream offsets* (unbounded ints counting payload bytes since
the SYN), not 32-bit sequence numbers, so no wrap-around logic is needed
here. The connection trims every segment to its receive window before
inserting, which bounds the memory held to the receive buffer; the number of
distinct ranges is bounded too (``max_ranges``).
"""

from __future__ import annotations


class Reassembly:
    """Non-overlapping, non-adjacent ranges ``[start, end)`` of received bytes."""

    __slots__ = ("_last", "_ranges", "max_ranges")

    def __init__(self, max_ranges: int = 256) -> None:
        # Sorted by start: [start, end, bytearray]
        self._ranges: list[list] = []
        self.max_ranges = max_ranges
        self._last: int | None = None   # start of the range most recently changed

    def __bool__(self) -> bool:
        return bool(self._ranges)

    @property
    def held(self) -> int:
        """Bytes held out of order."""
        return sum(r[1] - r[0] for r in self._ranges)

    @property
    def range_count(self) -> int:
        return len(self._ranges)

    def clear(self) -> None:
        self._ranges.clear()
        self._last = None

    def insert(self, start: int, data: bytes | memoryview) -> bool:
        """Store ``data`` at ``start``. False if it was dropped (too many ranges)."""
        size = len(data)
        if size == 0:
            return True
        end = start + size
        ranges = self._ranges
        # Ranges [i, j) touch [start, end] (overlap or adjacency).
        i = 0
        n = len(ranges)
        while i < n and ranges[i][1] < start:
            i += 1
        j = i
        while j < n and ranges[j][0] <= end:
            j += 1
        if i == j:
            if n >= self.max_ranges:
                return False
            ranges.insert(i, [start, end, bytearray(data)])
            self._last = start
            return True
        view = memoryview(data)
        first = ranges[i]
        merged_start = min(start, first[0])
        merged_end = max(end, ranges[j - 1][1])
        out = bytearray()
        pos = merged_start
        for s, e, buf in ranges[i:j]:
            if pos < s:      # gap between held ranges: covered by the new data
                out += view[pos - start:s - start]
                pos = s
            if e > pos:
                out += memoryview(buf)[pos - s:]
                pos = e
        if pos < merged_end:
            out += view[pos - start:]
        ranges[i:j] = [[merged_start, merged_end, out]]
        self._last = merged_start
        return True

    def pop_ready(self, offset: int) -> bytes | None:
        """Bytes that continue the stream at ``offset`` (and discard what is below it)."""
        ranges = self._ranges
        while ranges and ranges[0][0] <= offset:
            s, e, buf = ranges.pop(0)
            if e > offset:
                if self._last == s:
                    self._last = None
                return bytes(memoryview(buf)[offset - s:])
        return None

    def blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` ranges, the most recently changed first (RFC 2018 §4)."""
        out: list[tuple[int, int]] = []
        last = self._last
        if last is not None:
            for s, e, _ in self._ranges:
                if s == last:
                    out.append((s, e))
                    break
        for s, e, _ in self._ranges:
            if len(out) >= limit:
                break
            if s != last:
                out.append((s, e))
        return out[:limit]
