"""The eleven TCP states of RFC 9293 §3.3.2, printed with the RFC's spelling."""

from __future__ import annotations

from enum import Enum


class State(Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    def __str__(self) -> str:
        return self.value

    # Members are singletons compared by identity: hash them by identity too,
    # in C (Enum's own __hash__ is Python code, run on every state-set test).
    __hash__ = object.__hash__

    @property
    def synchronized(self) -> bool:
        """RFC 9293 §3.5: ESTABLISHED and every state after it."""
        return self not in _UNSYNCHRONIZED


_UNSYNCHRONIZED = frozenset({State.CLOSED, State.LISTEN, State.SYN_SENT, State.SYN_RECEIVED})
