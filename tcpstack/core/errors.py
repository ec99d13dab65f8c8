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


class _TcpOSError(OSError):
    """An OSError with the subclass's ``ERRNO`` whose text is just the message."""

    ERRNO = 0

    def __init__(self, message: str) -> None:
        super().__init__(self.ERRNO, message)

    def __str__(self) -> str:
        return self.args[1]


class TcpAddressInUse(_TcpOSError):
    """LISTEN on a port that listens already, or OPEN on a 4-tuple in use (EADDRINUSE)."""

    ERRNO = errno.EADDRINUSE


class TcpNoFreePort(_TcpOSError):
    """No ephemeral port is free towards this destination (EADDRNOTAVAIL)."""

    ERRNO = errno.EADDRNOTAVAIL


class TcpTooManyConnections(_TcpOSError):
    """The stack holds ``max_connections`` already (ENFILE)."""

    ERRNO = errno.ENFILE


class TcpInvalidArgument(ValueError):
    """An argument the core cannot use, such as a port outside 1-65535 (EINVAL)."""
