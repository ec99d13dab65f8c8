"""Connection errors the core reports (the ``ConnectionError`` family).

Each is a subclass of the matching builtin, so application code can catch
``ConnectionResetError`` etc. as it would with kernel sockets.
"""

from __future__ import annotations

import errno


class TcpConnectionRefused(ConnectionRefusedError):
    """RST in SYN-SENT (RFC 9293 §3.10.7.3)."""


class TcpConnectionReset(ConnectionResetError):
    """Acceptable RST in a synchronized state (RFC 9293 §3.10.7.4, second check)."""


class TcpTimeout(TimeoutError, ConnectionError):
    """Retransmissions, SYN retries, keepalive or zero-window probes gave up."""


class TcpConnectionAborted(ConnectionAbortedError):
    """The local application aborted the connection (RFC 9293 §3.10.5 ABORT)."""


class TcpConnectionClosing(BrokenPipeError):
    """SEND after CLOSE/shutdown (RFC 9293 §3.10.2: "connection closing")."""


class TcpAddressInUse(OSError):
    """LISTEN on a port that listens already, or OPEN on a 4-tuple in use (EADDRINUSE)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EADDRINUSE, message)

    def __str__(self) -> str:
        return self.args[1]


class TcpNoFreePort(OSError):
    """No ephemeral port is free towards this destination (EADDRNOTAVAIL)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EADDRNOTAVAIL, message)

    def __str__(self) -> str:
        return self.args[1]


class TcpTooManyConnections(OSError):
    """The stack holds ``max_connections`` already (ENFILE)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENFILE, message)

    def __str__(self) -> str:
        return self.args[1]


class TcpInvalidArgument(ValueError):
    """An argument the core cannot use, such as a port outside 1-65535 (EINVAL)."""
