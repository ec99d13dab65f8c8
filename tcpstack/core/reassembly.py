"""Out-of-order receive queue (RFC 9293 §3.10.7.4 seventh step, RFC 2018 §4).

Positions are *stream offsets* (unbounded ints counting payload bytes since
the SYN), not 32-bit sequence numbers, so no wrap-around logic is needed
here. The connection trims every segment to its receive window before
inserting, which bounds the memory held to the receive buffer; the number of
distinct ranges is bounded too (``max_ranges``), and optionally the bytes
held (``max_bytes``).

How it is kept, and what each operation costs (R = ranges held, at most
``max_ranges``; k = ranges a segment touches):

* A *run* is a maximal range ``[start, end)`` of held bytes. Runs are
  disjoint and never adjacent (touching ones are one run). A sorted list of
  their starts finds the runs a segment touches with two bisections,
  O(log R) comparisons (and a list insert or delete, a memmove of at most R
  pointers when a range comes or goes).
* A run's bytes are the pieces as they arrived, in a singly linked list of
  ``[piece, next]`` nodes. New bytes only ever go at a run's edges or into
  the gaps between the runs a segment bridges, so growing a run at either
  end and joining runs are O(1) relinks: nothing held is copied again when
  runs merge. Inserting a segment costs O(log R + k), plus copying what of
  it is new when that is small (below), whatever is held already.
* Pieces: a read-only view of ``bytes`` (a segment's payload) is kept by
  reference when it is at least half of that payload, so what is kept alive
  is at most twice what is held; anything mutable, or a small part of a
  larger object, is copied once, on the way in. Pieces under ``_COPY_BELOW``
  bytes are gathered into one ``bytearray`` at the run's tail, so a stream of
  tiny segments is not a list of tiny objects.
* ``pop_ready`` hands the whole run that continues the stream out at once
  (joined: one copy of what is delivered, or none with ``pop_ready_pieces``).
* Recency for SACK (RFC 2018 §4) is an ``OrderedDict`` of runs, the most
  recently changed last: ``blocks(limit)`` is O(limit).

Overlaps: the bytes held first win; a later segment only fills the gaps
between what is held (as Linux's ``tcp_data_queue_ofo`` does). The stream
is the same either way when the peer is honest; only a peer that sends
different bytes for the same sequence numbers can tell.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

__all__ = ["Reassembly"]

Piece = bytes | bytearray | memoryview

_COPY_BELOW = 512        # shorter pieces are copied (and gathered), not viewed
_GATHER_LIMIT = 65536    # a gathered bytearray piece grows up to about this much


class _Run:
    """Held bytes ``[start, end)``: pieces linked from ``head`` to ``tail``."""

    __slots__ = ("end", "head", "start", "tail")

    def __init__(self, start: int, end: int, node: list) -> None:
        self.start = start
        self.end = end
        self.head = node          # [piece, next node or None]
        self.tail = node


def _keep(view: memoryview) -> Piece:
    """What to store for ``view``: nothing anybody can change afterwards,
    and nothing that keeps much more memory alive than it holds."""
    n = view.nbytes
    if n < _COPY_BELOW:
        return bytearray(view)            # gatherable; cheaper than a view
    obj = view.obj
    if type(obj) is bytes:
        if n == len(obj):
            return obj
        if n * 2 >= len(obj):
            return view                   # read-only: nobody can change bytes
    return bytes(view)


class Reassembly:
    """Non-overlapping, non-adjacent ranges ``[start, end)`` of received bytes."""

    __slots__ = ("_held", "_recent", "_runs", "_starts", "max_bytes",
                 "max_ranges", "refused_bytes", "refused_segments")

    def __init__(self, max_ranges: int | None = 256, max_bytes: int | None = None) -> None:
        self._starts: list[int] = []      # run starts, ascending
        self._runs: list[_Run] = []       # the runs, in the same order
        # Runs from the least to the most recently changed (RFC 2018 §4).
        self._recent: OrderedDict[_Run, None] = OrderedDict()
        self._held = 0
        self.max_ranges = max_ranges      # None: no bound on distinct ranges
        self.max_bytes = max_bytes        # None: no bound on bytes held
        self.refused_segments = 0         # inserts refused by either bound
        self.refused_bytes = 0            # ... and their length

    def __bool__(self) -> bool:
        return bool(self._starts)

    @property
    def held(self) -> int:
        """Bytes held out of order."""
        return self._held

    @property
    def range_count(self) -> int:
        return len(self._starts)

    def clear(self) -> None:
        """Drop everything held (the refusal counters are kept)."""
        self._starts.clear()
        self._runs.clear()
        self._recent.clear()
        self._held = 0

    def insert(self, start: int, data: bytes | bytearray | memoryview) -> bool:
        """Store ``data`` at stream offset ``start``: the bytes not held yet
        (what is held already stays as it is: the first arrival wins).

        False if it was refused, whole: it would add a range beyond
        ``max_ranges`` or take the bytes held beyond ``max_bytes``. A segment
        that only repeats held bytes, or that joins onto held ones, is never
        refused for the range bound.
        """
        view = data if type(data) is memoryview else memoryview(data)
        if view.ndim != 1 or view.format != "B" or not view.c_contiguous:
            view = memoryview(view.tobytes())
        size = view.nbytes
        if not size:
            return True
        end = start + size
        starts = self._starts
        runs = self._runs
        # Runs [i, j) overlap or touch [start, end): i is the first run ending
        # at or after start, j the first starting after end.
        i = bisect_right(starts, start)
        if i and runs[i - 1].end >= start:
            i -= 1
        j = bisect_right(starts, end, i)
        recent = self._recent
        if i == j:                        # a range of its own
            if ((self.max_ranges is not None and len(starts) >= self.max_ranges)
                    or (self.max_bytes is not None and self._held + size > self.max_bytes)):
                self.refused_segments += 1
                self.refused_bytes += size
                return False
            run = _Run(start, end, [_keep(view), None])
            starts.insert(i, start)
            runs.insert(i, run)
            recent[run] = None
            self._held += size
            return True
        run = runs[i]
        # Bytes of [start, end) not held yet: before, between and after runs i..j-1.
        new = run.start - start if start < run.start else 0
        pos = run.end
        for k in range(i + 1, j):
            nxt = runs[k]
            new += nxt.start - pos
            pos = nxt.end
        if end > pos:
            new += end - pos
        if new:
            if self.max_bytes is not None and self._held + new > self.max_bytes:
                self.refused_segments += 1
                self.refused_bytes += size
                return False
            if start < run.start:         # grows to the left
                run.head = [_keep(view[:run.start - start]), run.head]
                run.start = starts[i] = start
            for k in range(i + 1, j):     # fill the gap to the next run, link it on
                nxt = runs[k]
                self._append(run, view[run.end - start:nxt.start - start])
                run.tail[1] = nxt.head
                run.tail = nxt.tail
                run.end = nxt.end
                del recent[nxt]
            if end > run.end:             # grows to the right
                self._append(run, view[run.end - start:])
                run.end = end
            if j > i + 1:
                del starts[i + 1:j]
                del runs[i + 1:j]
            self._held += new
        recent.move_to_end(run)           # the run holding this segment is reported first
        return True

    @staticmethod
    def _append(run: _Run, view: memoryview) -> None:
        """Put ``view``'s bytes after the last of ``run``'s pieces."""
        tail = run.tail
        last = tail[0]
        if view.nbytes < _COPY_BELOW and type(last) is bytearray and len(last) < _GATHER_LIMIT:
            last += view                  # a small piece joins a small one: one small copy
            return
        node = [_keep(view), None]
        tail[1] = node
        run.tail = node

    def pop_ready_pieces(self, offset: int) -> list[Piece]:
        """The held bytes from ``offset`` up to the next hole, as the pieces
        they are held in (no copy; ``[]`` if ``offset`` is not held), and
        discard them and everything below ``offset``.

        The pieces are ``bytes``, read-only views of ``bytes``, or
        ``bytearray``s nobody else refers to any more.
        """
        starts = self._starts
        k = bisect_right(starts, offset)  # runs [0, k) start at or below offset
        if not k:
            return []
        runs = self._runs
        recent = self._recent
        out: list[Piece] = []
        run = runs[k - 1]
        if run.end > offset:              # it holds offset: hand out the rest of it
            node = run.head
            skip = offset - run.start
            while skip:                   # what the stream has passed already
                piece = node[0]
                n = len(piece)
                if skip >= n:
                    skip -= n
                    node = node[1]
                    continue
                if type(piece) is memoryview:
                    piece = piece[skip:]
                elif type(piece) is bytes and n - skip >= _COPY_BELOW:
                    piece = memoryview(piece)[skip:]
                else:
                    piece = piece[skip:]
                out.append(piece)
                node = node[1]
                break
            while node is not None:
                out.append(node[0])
                node = node[1]
        dropped = 0                       # and the rest lie wholly below offset
        for r in runs[:k]:
            dropped += r.end - r.start
            del recent[r]
        del starts[:k]
        del runs[:k]
        self._held -= dropped
        return out

    def pop_ready(self, offset: int) -> bytes | memoryview | None:
        """Bytes that continue the stream at ``offset``, up to the next hole
        (and discard what is below ``offset``); None if ``offset`` is not held.

        ``bytes``, or a read-only view of ``bytes`` when they are one piece.
        """
        pieces = self.pop_ready_pieces(offset)
        if not pieces:
            return None
        if len(pieces) == 1:
            piece = pieces[0]
            return bytes(piece) if type(piece) is bytearray else piece
        return b"".join(pieces)

    def blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` ranges for SACK blocks (RFC 2018 §4): the one most
        recently changed (it holds the segment that triggered the ACK) first,
        then the others from the most to the least recently changed, which
        repeats the most recently reported ones first. O(limit)."""
        out: list[tuple[int, int]] = []
        if limit <= 0:
            return out
        for run in reversed(self._recent):
            out.append((run.start, run.end))
            if len(out) >= limit:
                break
        return out
