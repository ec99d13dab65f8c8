"""TCP sequence numbers as a type: 32-bit modular arithmetic.

RFC 9293 §3.4: sequence numbers live in a space of 2**32 and all arithmetic
is modulo 2**32. Comparison uses the signed 32-bit difference, as Linux's
``before()``/``after()`` and gVisor's ``seqnum`` package do, so it is
meaningful for numbers less than 2**31 apart.

``Seq`` subclasses ``int`` so that it hashes, formats and packs like the wire
value, while ``+``, ``-`` and the comparisons follow sequence-space rules.
"""

from __future__ import annotations

MOD = 1 << 32
_MASK = MOD - 1
_HALF = 1 << 31


class Seq(int):
    """A 32-bit sequence number. ``Seq(x) + n`` wraps; ``a - b`` is a signed int."""

    __slots__ = ()

    def __new__(cls, value: int = 0) -> Seq:
        return _new(cls, value & _MASK)

    # The bodies below call int's own slots (_add, _sub...) rather than
    # int(self): these run several times per segment on the data path.

    # Arithmetic -----------------------------------------------------------
    def __add__(self, n: int) -> Seq:  # type: ignore[override]
        return _new(Seq, _add(self, n) & _MASK)

    __radd__ = __add__

    def __sub__(self, other: int) -> int | Seq:  # type: ignore[override]
        """``Seq - Seq`` is the signed distance; ``Seq - int`` is a Seq."""
        if type(other) is Seq:
            d = _sub(self, other) & _MASK
            return d - MOD if d >= _HALF else d
        return _new(Seq, _sub(self, other) & _MASK)

    def dist(self, other: int) -> int:
        """Signed distance ``self - other`` in sequence space."""
        d = _sub(self, other) & _MASK
        return d - MOD if d >= _HALF else d

    # Comparison (RFC 9293 §3.4: "=<" means less than or equal, modulo 2**32)
    def __lt__(self, other: int) -> bool:  # type: ignore[override]
        return _sub(self, other) & _MASK >= _HALF

    def __le__(self, other: int) -> bool:  # type: ignore[override]
        d = _sub(self, other) & _MASK
        return d == 0 or d >= _HALF

    def __gt__(self, other: int) -> bool:  # type: ignore[override]
        return 0 < _sub(self, other) & _MASK < _HALF

    def __ge__(self, other: int) -> bool:  # type: ignore[override]
        return _sub(self, other) & _MASK < _HALF

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and _sub(self, other) & _MASK == 0

    def __ne__(self, other: object) -> bool:
        return not (isinstance(other, int) and _sub(self, other) & _MASK == 0)

    __hash__ = int.__hash__

    def in_window(self, start: int, size: int) -> bool:
        """True if ``start <= self < start + size`` in sequence space.

        RFC 9293 §3.10.7.4 acceptability tests are built from this. A window
        of size 0 contains nothing.
        """
        return _sub(self, start) & _MASK < size

    def __repr__(self) -> str:
        return f"Seq({int(self)})"

    __str__ = int.__repr__


_new = int.__new__
_add = int.__add__
_sub = int.__sub__


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in sequence space, on Seq or plain wire ints.

    The one way the core compares sequence numbers (RFC 9293 §3.4): ``a`` is
    after ``b`` when ``seq_diff(a, b) > 0``, the same when 0, before when < 0
    (Linux's ``after()``/``before()``). Meaningful below 2**31 apart.
    """
    d = _sub(a, b) & _MASK
    return d - MOD if d >= _HALF else d


def wire_seq(value: int) -> Seq:
    """The ``Seq`` of a 32-bit wire field, already in [0, 2**32) (not masked again).

    ``int.__new__`` directly: several times cheaper than ``Seq(value)``.
    """
    return _new(Seq, value)


def seq_max(a: Seq, b: Seq) -> Seq:
    return a if a >= b else b


def seq_min(a: Seq, b: Seq) -> Seq:
    return a if a <= b else b
