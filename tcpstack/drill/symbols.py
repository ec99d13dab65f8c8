"""Names a script may use: socket and fcntl constants, errno names, tcp_info.

Values are Linux's (the kernel target hands them to real system calls; the
core target only compares them), taken from Python's ``socket``/``errno``/
``os`` modules where those have them.
"""

from __future__ import annotations

import errno as errno_mod
import os
import socket

from tcpstack.drill.model import Binary, Call, Ellipsis_, Expr, Int, ListExpr, Str, Struct, Word

SYMBOLS: dict[str, int] = {
    "AF_INET": 2, "AF_INET6": 10, "AF_UNSPEC": 0, "PF_INET": 2, "PF_INET6": 10,
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3,
    "SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000,
    "IPPROTO_IP": 0, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_IPV6": 41,
    "SOL_SOCKET": 1, "SOL_TCP": 6, "SOL_IP": 0, "SOL_IPV6": 41,
    "SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5,
    "SO_BROADCAST": 6, "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9,
    "SO_OOBINLINE": 10, "SO_LINGER": 13, "SO_REUSEPORT": 15, "SO_RCVLOWAT": 18,
    "SIOCATMARK": 0x8905,
    "SO_SNDLOWAT": 19, "SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21, "SO_SNDBUFFORCE": 32,
    "SO_RCVBUFFORCE": 33, "SO_MAX_PACING_RATE": 47, "SO_ZEROCOPY": 60,
    "TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4,
    "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8,
    "TCP_DEFER_ACCEPT": 9, "TCP_WINDOW_CLAMP": 10, "TCP_INFO": 11, "TCP_QUICKACK": 12,
    "TCP_CONGESTION": 13, "TCP_MD5SIG": 14, "TCP_THIN_LINEAR_TIMEOUTS": 16,
    "TCP_USER_TIMEOUT": 18, "TCP_REPAIR": 19, "TCP_FASTOPEN": 23, "TCP_TIMESTAMP": 24,
    "TCP_NOTSENT_LOWAT": 25, "TCP_CC_INFO": 26, "TCP_SAVE_SYN": 27, "TCP_SAVED_SYN": 28,
    "TCP_FASTOPEN_CONNECT": 30, "TCP_FASTOPEN_KEY": 33, "TCP_FASTOPEN_NO_COOKIE": 34,
    "TCP_INQ": 36, "TCP_TX_DELAY": 37,
    "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4,
    "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_NONBLOCK": os.O_NONBLOCK,
    "FD_CLOEXEC": 1,
    "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
    "MSG_OOB": 1, "MSG_PEEK": 2, "MSG_DONTROUTE": 4, "MSG_TRUNC": 0x20,
    "MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100, "MSG_NOSIGNAL": 0x4000,
    "MSG_MORE": 0x8000, "MSG_ZEROCOPY": 0x4000000, "MSG_FASTOPEN": 0x20000000,
    "MSG_ERRQUEUE": 0x2000,
    "POLLIN": 1, "POLLPRI": 2, "POLLOUT": 4, "POLLERR": 8, "POLLHUP": 0x10,
    "POLLNVAL": 0x20, "POLLRDNORM": 0x40, "POLLRDBAND": 0x80, "POLLWRNORM": 0x100,
    "POLLRDHUP": 0x2000,
    "FIONREAD": 0x541B, "SIOCINQ": 0x541B, "SIOCOUTQ": 0x5411, "SIOCOUTQNSD": 0x894B,
    "NULL": 0,
}

# tcp_info: Linux's numbers for states, congestion-avoidance states and options.
TCP_STATES = {
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
}
TCP_CA_STATES = {"TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2,
                 "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4}
TCPI_OPTIONS = {"TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4,
                "TCPI_OPT_ECN": 8, "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32}
CODE_SYMBOLS = {**TCP_STATES, **TCP_CA_STATES, **TCPI_OPTIONS}


class EvalError(Exception):
    """An argument the drill cannot evaluate (the script SKIPs)."""


def errno_number(name: str) -> int | None:
    value = getattr(errno_mod, name, None)
    return value if isinstance(value, int) else None


def errno_name(number: int | None) -> str:
    if not number:
        return "0"
    return errno_mod.errorcode.get(number, str(number))


def symbol(name: str) -> int:
    if name in SYMBOLS:
        return SYMBOLS[name]
    value = getattr(socket, name, None)
    if isinstance(value, int) and name.isupper():
        return int(value)
    number = errno_number(name) if name.startswith("E") and name.isupper() else None
    if number is not None:
        return number
    raise EvalError(f"unknown symbol {name}")


def evaluate(expr: Expr) -> object:
    """An argument as a Python value: int, str, list, dict (struct), or ``...``
    (returned as the Ellipsis object)."""
    if isinstance(expr, Ellipsis_):
        return ...
    if isinstance(expr, Int):
        return expr.value
    if isinstance(expr, Word):
        return symbol(expr.name)
    if isinstance(expr, Str):
        return expr.text
    if isinstance(expr, ListExpr):
        return [evaluate(i) for i in expr.items]
    if isinstance(expr, Binary):
        if expr.op == "|":
            lhs, rhs = evaluate(expr.lhs), evaluate(expr.rhs)
            if not isinstance(lhs, int) or not isinstance(rhs, int):
                raise EvalError(f"cannot OR {expr.lhs} and {expr.rhs}")
            return lhs | rhs
        raise EvalError(f"unexpected {expr}")
    if isinstance(expr, Struct):
        fields: dict[str, object] = {}
        for i, item in enumerate(expr.items):
            if isinstance(item, Binary) and item.op == "=" and isinstance(item.lhs, Word):
                fields[item.lhs.name] = evaluate(item.rhs)
            else:
                fields[str(i)] = evaluate(item)
        return fields
    if isinstance(expr, Call):
        if expr.name == "htons" and len(expr.args) == 1:
            return evaluate(expr.args[0])
        if expr.name == "inet_addr" and len(expr.args) == 1:
            return evaluate(expr.args[0])
        raise EvalError(f"{expr.name}(...) expressions are not supported")
    raise EvalError(f"cannot evaluate {expr}")
