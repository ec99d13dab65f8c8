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


class TcpUnreachable(ConnectionError):
    """An ICMP destination unreachable (or ICMPv6 alike) ended the connection: during
    SYN-SENT at once (RFC 1122 §4.2.3.9, RFC 5461 §4), later only when the
    connection timed out with it as the last soft error (Linux ``sk_err_soft``).
    ``errno`` is the kernel's for the same report (Linux ``icmp_err_convert``)."""

    ERRNO = 0

    def __init__(self, message: str) -> None:
        super().__init__(self.ERRNO, message)

    def __str__(self) -> str:
        return self.args[1]


class TcpNetworkUnreachable(TcpUnreachable):
    """ICMP net unreachable (ENETUNREACH)."""

    ERRNO = errno.ENETUNREACH


class TcpHostUnreachable(TcpUnreachable):
    """ICMP host unreachable, or time exceeded (EHOSTUNREACH)."""

    ERRNO = errno.EHOSTUNREACH


class TcpProtocolUnreachable(TcpUnreachable):
    """ICMP protocol unreachable: the peer does not speak TCP (ENOPROTOOPT)."""

    ERRNO = errno.ENOPROTOOPT


class TcpPortUnreachable(TcpUnreachable, TcpConnectionRefused):
    """ICMP port unreachable: refused like a RST in SYN-SENT (ECONNREFUSED)."""

    ERRNO = errno.ECONNREFUSED


class TcpAdminProhibited(TcpUnreachable):
    """ICMP communication administratively prohibited: a filter said no (EACCES)."""

    ERRNO = errno.EACCES


class TcpSourceRouteFailed(TcpUnreachable):
    """ICMP source route failed (EOPNOTSUPP)."""

    ERRNO = errno.EOPNOTSUPP


class TcpParameterProblem(TcpUnreachable):
    """ICMP parameter problem: a router could not process our header (EPROTO)."""

    ERRNO = errno.EPROTO
