"""The core target: tcpstack's sans-IO ``StackCore`` on a virtual clock.

No root, no device: time is a number the drill moves. Between events the
stack's timers run at each ``next_deadline()`` (``poll``); every segment the
stack emits is put through ``build_packet`` and queued with the virtual time
it left, so outbound lines see exactly what the runtime would write.

System calls map onto the core's calls on emulated sockets:

===================  =====================================================
socket/bind/listen   ``stack.listen(bind_port, backlog, ConnectionOptions)``
accept               ``listener.accept()`` (EAGAIN, or blocks while none)
connect              ``stack.connect(remote, connect_port, ...)``: EINPROGRESS
                     when O_NONBLOCK, else blocks until ESTABLISHED or failed
write/send           ``conn.send`` (zeros, as packetdrill writes)
read/recv            ``conn.recv``; 0 at EOF, EAGAIN or blocks when empty
shutdown(SHUT_WR)    ``conn.shutdown``; close -> ``conn.close`` (``abort``
                     with SO_LINGER {onoff=1, linger=0}); listener close
setsockopt           TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE/KEEPINTVL/KEEPCNT,
                     TCP_MAXSEG, SO_SNDBUF, SO_RCVBUF, TCP_CONGESTION, SO_LINGER
                     (0 only), SO_REUSEADDR/SO_REUSEPORT (no effect): before
                     connect/listen; TCP_NODELAY also after
getsockopt           SO_ERROR, SO_RCVBUF, SO_SNDBUF, TCP_NODELAY, TCP_MAXSEG,
                     SO_KEEPALIVE, TCP_KEEPIDLE/KEEPINTVL/KEEPCNT
fcntl                F_GETFL / F_SETFL (O_NONBLOCK), F_GETFD / F_SETFD
getsockname/peername 0
===================  =====================================================

``conn.error`` maps to errno: refused ECONNREFUSED, reset ECONNRESET, timed
out ETIMEDOUT, send after shutdown EPIPE. Anything else SKIPs the script.
"""

from __future__ import annotations

import dataclasses
import errno as E
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tcpstack.core.config import LINUX_KEEPALIVE, ConnectionOptions, StackConfig
from tcpstack.core.errors import (
    TcpAddressInUse,
    TcpConnectionAborted,
    TcpConnectionClosing,
    TcpConnectionRefused,
    TcpConnectionReset,
    TcpTimeout,
)
from tcpstack.core.options import mtu_mss
from tcpstack.core.stack import Connection, Listener, StackCore
from tcpstack.core.state import State
from tcpstack.drill.symbols import SYMBOLS
from tcpstack.drill.target import BLOCK, CallHandle, Env, Flow, Outcome, Skip, _Block
from tcpstack.wire.errors import Contradictory, WireError
from tcpstack.wire.packet import IpHeader, build_packet, parse_packet
from tcpstack.wire.tcp import TcpSegment

ISN_SECRET = b"tcpstack drill core target!"
S = SYMBOLS

# Linux's tcpi_state numbers.
_STATE_NUMBERS = {
    State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
    State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
    State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11,
}
_CA_NUMBERS = {"OPEN": 0, "DISORDER": 1, "CWR": 2, "RECOVERY": 3, "LOSS": 4}
_SYNCHRONIZING = (State.SYN_SENT, State.SYN_RECEIVED)

# sysctls the core maps (key -> what it sets), and those that change nothing here.
_NO_EFFECT = {
    "net.ipv4.tcp_frto", "net.ipv4.tcp_dsack", "net.ipv4.tcp_fack", "net.ipv4.tcp_reordering",
    "net.ipv4.tcp_early_retrans", "net.ipv4.tcp_recovery", "net.ipv4.tcp_tso_win_divisor",
    "net.ipv4.tcp_pacing_ss_ratio", "net.ipv4.tcp_pacing_ca_ratio",
    "net.ipv4.tcp_notsent_lowat", "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_syncookies", "net.ipv4.tcp_fastopen", "net.ipv4.tcp_fastopen_key",
    "net.ipv4.tcp_min_tso_segs", "net.ipv4.tcp_autocorking", "net.ipv4.tcp_moderate_rcvbuf",
    "net.ipv4.tcp_no_metrics_save", "net.ipv4.tcp_mtu_probing", "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_thin_linear_timeouts", "net.ipv4.tcp_limit_output_bytes",
    "net.ipv4.tcp_min_rtt_wlen", "net.ipv4.tcp_comp_sack_nr", "net.ipv4.tcp_comp_sack_delay_ns",
    "net.ipv4.tcp_shrink_window", "net.core.default_qdisc",
}


def _errno_of(error: BaseException) -> int:
    if isinstance(error, TcpConnectionRefused):
        return E.ECONNREFUSED
    if isinstance(error, TcpConnectionReset):
        return E.ECONNRESET
    if isinstance(error, TcpTimeout):
        return E.ETIMEDOUT
    if isinstance(error, TcpConnectionClosing):
        return E.EPIPE
    if isinstance(error, TcpConnectionAborted):
        return E.ECONNABORTED
    return getattr(error, "errno", None) or E.EIO


def _fail(err: int) -> Outcome:
    return Outcome(-1, err)


@dataclass
class _Socket:
    fd: int
    options: ConnectionOptions
    nonblock: bool = False
    bound: int | None = None
    listener: Listener | None = None
    conn: Connection | None = None
    connect_started: bool = False
    connect_reported: bool = False
    error_reported: bool = False
    linger_abort: bool = False
    keepalive_on: bool = False
    keepalive: list[float] = field(default_factory=lambda: list(LINUX_KEEPALIVE))


@dataclass
class _CoreHandle(CallHandle):
    retry: Callable[[], Outcome | _Block] | None = None


class CoreTarget:
    name = "core"
    default_tolerance_usecs = 4000
    any_time_wait = 300.0

    def __init__(self) -> None:
        self._env = Env()
        self._now = 0.0
        self._stack: StackCore | None = None
        self._config_kw: dict[str, object] = {}
        self._defaults = ConnectionOptions()
        self._out: list[tuple[float, bytes]] = []
        self._sockets: dict[int, _Socket] = {}
        self._pending: list[_CoreHandle] = []

    # -- lifecycle ----------------------------------------------------------------
    def begin(self, env: Env) -> None:
        self.__init__()   # type: ignore[misc]
        self._env = env

    def start_clock(self) -> None:
        """Virtual time starts at 0 whatever the init command did."""

    def finish(self) -> None:
        self._stack = None
        self._sockets.clear()
        self._pending.clear()

    @property
    def stack(self) -> StackCore:
        if self._stack is None:
            cfg = StackConfig(isn_secret=ISN_SECRET, mtu=self._env.mtu, tso_max=0,
                              **self._config_kw)  # type: ignore[arg-type]
            self._stack = StackCore(self._env.local_ip, cfg)
        return self._stack

    # -- time and packets ---------------------------------------------------------------
    def now(self) -> float:
        return self._now

    def _collect(self) -> None:
        stack = self._stack
        if stack is None:
            return
        for src, dst, seg in stack.take_output():
            self._out.append((self._now, build_packet(src, dst, seg)))
        stack.take_changed()
        if self._pending:
            for handle in list(self._pending):
                assert handle.retry is not None
                outcome = handle.retry()
                if outcome is not BLOCK:
                    assert isinstance(outcome, Outcome)
                    handle.done, handle.outcome, handle.end_time = True, outcome, self._now
                    self._pending.remove(handle)
            for src, dst, seg in stack.take_output():
                self._out.append((self._now, build_packet(src, dst, seg)))

    def _run_timers(self, until: float) -> bool:
        """Fire timers due up to ``until``; True when that produced output."""
        stack = self._stack
        while stack is not None:
            due = stack.next_deadline()
            if due is None or due > until:
                break
            self._now = max(self._now, due)
            stack.poll(self._now)
            self._collect()
            if self._out:
                return True
        return bool(self._out)

    def advance(self, until: float) -> None:
        """Run every timer due up to ``until``; what they send stays queued."""
        while self._stack is not None:
            due = self._stack.next_deadline()
            if due is None or due > until:
                break
            self._now = max(self._now, due)
            self._stack.poll(self._now)
            self._collect()
        self._now = max(self._now, until)

    def next_packet(self, deadline: float) -> tuple[float, bytes] | None:
        if not self._out:
            self._run_timers(deadline)
        if self._out:
            return self._out.pop(0)
        self._now = max(self._now, deadline)
        return None

    def inject(self, raw: bytes) -> None:
        try:
            ip, seg = parse_packet(raw)
        except Contradictory:
            # SYN with FIN or RST: the runtime's codec drops these before the core,
            # but the core must decide for itself too (hostile input is normal
            # input), and that is what this target tests: hand it over as is.
            ip, seg = _parse_contradictory(raw)
        except WireError as exc:
            raise Skip(f"the drill built a packet tcpstack cannot parse ({exc.reason})") from None
        self.stack.receive(ip.src, ip.dst, seg, self._now)
        self._collect()

    # -- sysctls -------------------------------------------------------------------
    def apply_sysctls(self, settings: tuple[tuple[str, str], ...], line: int) -> list[str]:
        notes = []
        for key, value in settings:
            key = key.replace("/", ".")
            try:
                notes.extend(self._sysctl(key, value.strip()))
            except ValueError:
                raise Skip(f"sysctl {key}={value}: bad value", line) from None
            except _Unsupported as exc:
                raise Skip(str(exc), line) from None
        return notes

    def _sysctl(self, key: str, value: str) -> list[str]:
        flag = {"timestamps": "net.ipv4.tcp_timestamps", "sack": "net.ipv4.tcp_sack",
                "window_scale": "net.ipv4.tcp_window_scaling"}
        for attr, name in flag.items():
            if key == name:
                self._defaults = replace(self._defaults, **{attr: int(value) != 0})
                return []
        config = {"net.ipv4.tcp_syn_retries": ("syn_retries", int),
                  "net.ipv4.tcp_synack_retries": ("synack_retries", int),
                  "net.ipv4.tcp_retries2": ("retries2", int),
                  "net.ipv4.tcp_fin_timeout": ("fin_wait_2_timeout", float),
                  "net.ipv4.tcp_rfc1337": ("rfc1337", lambda v: int(v) != 0)}
        if key in config:
            attr, conv = config[key]
            new = conv(value)
            if self._config_kw.get(attr) != new:
                if self._stack is not None and (self._stack.connections()
                                                or self._stack.listeners()):
                    raise _Unsupported(f"sysctl {key} after sockets exist is not supported "
                                       f"on the core target")
                self._config_kw[attr] = new
                self._stack = None
            return []
        if key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
            size = int(value.split()[-1])
            attr = "recv_buffer" if key.endswith("rmem") else "send_buffer"
            self._defaults = replace(self._defaults, **{attr: size})
            return [f"{key}: tcpstack's {attr} set to the maximum, {size}"]
        if key == "net.ipv4.tcp_congestion_control":
            if value not in ("cubic", "reno"):
                raise _Unsupported(f"congestion control {value!r} is not in tcpstack")
            self._defaults = replace(self._defaults, cc=value)
            return []
        if key == "net.ipv4.tcp_ecn":
            if int(value) not in (0, 2):
                raise _Unsupported("tcpstack has no ECN (net.ipv4.tcp_ecn must be 0 or 2)")
            return []
        if key in _NO_EFFECT:
            return [f"sysctl {key}={value}: no equivalent in tcpstack, ignored"]
        raise _Unsupported(f"sysctl {key} has no equivalent on the core target")

    # -- system calls -----------------------------------------------------------------
    def syscall(self, name: str, args: list[object], expected: int | None) -> Outcome | _Block:
        outcome = self._call(name, args, expected, blocking_call=False)
        self._collect()
        return outcome

    def start_blocking(self, name: str, args: list[object], expected: int | None) -> CallHandle:
        state: dict[str, object] = {}
        outcome = self._call(name, args, expected, blocking_call=True, state=state)
        handle = _CoreHandle(name)
        if outcome is not BLOCK:
            assert isinstance(outcome, Outcome)
            handle.done, handle.outcome, handle.end_time = True, outcome, self._now
        else:
            handle.retry = lambda: self._call(name, args, expected, blocking_call=True,
                                              state=state, retry=True)
            self._pending.append(handle)
        self._collect()
        return handle

    def _sock(self, args: list[object]) -> _Socket:
        fd = args[0] if args else None
        if not isinstance(fd, int) or fd not in self._sockets:
            raise _BadFd()
        return self._sockets[fd]

    def _new_fd(self, expected: int | None) -> int:
        if expected is not None and expected >= 0 and expected not in self._sockets:
            return expected
        fd = 3
        while fd in self._sockets:
            fd += 1
        return fd

    def _call(self, name: str, args: list[object], expected: int | None, *,
              blocking_call: bool, state: dict[str, object] | None = None,
              retry: bool = False) -> Outcome | _Block:
        handler = getattr(self, "_sys_" + name, None)
        if handler is None:
            raise Skip(f"system call {name}() is not supported on the core target")
        try:
            return handler(args, expected, blocking_call, state if state is not None else {},
                           retry)
        except _BadFd:
            return _fail(E.EBADF)
        except _Unsupported as exc:
            raise Skip(str(exc)) from None

    def _sys_socket(self, args, expected, blocking_call, state, retry):
        if len(args) != 3:
            raise _Unsupported("socket() takes 3 arguments")
        domain, kind, proto = args
        # packetdrill's --ip_version=ipv6 reads AF_INET in a script as AF_INET6.
        if domain not in (..., S["AF_INET"], S["AF_INET6"]) or not isinstance(kind, int) or \
                kind & 0xF != S["SOCK_STREAM"] or proto not in (0, S["IPPROTO_TCP"], ...):
            raise _Unsupported("only TCP sockets (AF_INET, AF_INET6) are supported")
        fd = self._new_fd(expected)
        self._sockets[fd] = _Socket(fd, self._defaults,
                                    nonblock=bool(kind & S["SOCK_NONBLOCK"]))
        return Outcome(fd)

    def _sys_bind(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        if len(args) > 1 and args[1] is not ...:
            raise _Unsupported("bind() to an explicit address is not supported (use ...)")
        vs.bound = self._env.bind_port
        return Outcome(0)

    def _sys_listen(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        backlog = args[1] if len(args) > 1 and isinstance(args[1], int) else 128
        if vs.listener is None:
            try:
                vs.listener = self.stack.listen(vs.bound or self._env.bind_port,
                                                max(1, backlog), self._options(vs))
            except TcpAddressInUse:
                return _fail(E.EADDRINUSE)
        return Outcome(0)

    def _sys_accept(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        if vs.listener is None:
            return _fail(E.EINVAL)
        conn = vs.listener.accept()
        if conn is None:
            return _fail(E.EAGAIN) if vs.nonblock and not blocking_call else BLOCK
        fd = self._new_fd(expected)
        # An accepted socket inherits the listener's socket options (Linux copies
        # SO_LINGER, keepalive and the rest from the listening socket).
        self._sockets[fd] = _Socket(fd, conn.options, conn=conn, connect_reported=True,
                                    linger_abort=vs.linger_abort,
                                    keepalive_on=vs.keepalive_on,
                                    keepalive=list(vs.keepalive))
        return Outcome(fd)

    _sys_accept4 = _sys_accept

    def _sys_connect(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        if len(args) > 1 and args[1] is not ...:
            raise _Unsupported("connect() to an explicit address is not supported (use ...)")
        first = vs.conn is None
        if first:
            try:
                vs.conn = self.stack.connect(self._env.remote_ip, self._env.connect_port,
                                             self._now, local_port=vs.bound,
                                             options=self._options(vs))
            except TcpAddressInUse:
                return _fail(E.EADDRINUSE)
            vs.connect_started = True
        conn = vs.conn
        assert conn is not None
        if conn.state in _SYNCHRONIZING:
            if vs.nonblock and not blocking_call:
                return _fail(E.EINPROGRESS if first else E.EALREADY)
            return BLOCK
        if conn.error is not None and conn.state is State.CLOSED:
            if vs.error_reported:
                return _fail(E.ECONNABORTED)
            vs.error_reported = True
            return _fail(_errno_of(conn.error))
        if not vs.connect_reported:
            vs.connect_reported = True
            return Outcome(0)
        return _fail(E.EISCONN)

    def _error_result(self, vs: _Socket, writing: bool) -> Outcome | None:
        conn = vs.conn
        if conn is None or conn.error is None or isinstance(conn.error, TcpConnectionAborted):
            return None
        if not vs.error_reported:
            vs.error_reported = True
            return _fail(_errno_of(conn.error))
        return _fail(E.EPIPE) if writing else Outcome(0)

    def _sys_read(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        flags = args[3] if len(args) > 3 and isinstance(args[3], int) else 0
        if flags & ~(S["MSG_DONTWAIT"] | S["MSG_NOSIGNAL"]):
            raise _Unsupported(f"recv flags {flags:#x} are not supported on the core target")
        nonblock = (vs.nonblock or bool(flags & S["MSG_DONTWAIT"])) and not blocking_call
        conn = vs.conn
        if conn is None:
            return _fail(E.ENOTCONN)
        if conn.state in _SYNCHRONIZING:
            return _fail(E.EAGAIN) if nonblock else BLOCK
        if conn.recv_available():
            return Outcome(len(conn.recv(count, self._now)))
        error = self._error_result(vs, writing=False)
        if error is not None:
            return error
        if conn.at_eof or conn.state is State.CLOSED:
            return Outcome(0)
        return _fail(E.EAGAIN) if nonblock else BLOCK

    _sys_recv = _sys_read
    _sys_recvfrom = _sys_read

    def _sys_write(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        flags = args[3] if len(args) > 3 and isinstance(args[3], int) else 0
        if flags & ~(S["MSG_DONTWAIT"] | S["MSG_NOSIGNAL"]):
            raise _Unsupported(f"send flags {flags:#x} are not supported on the core target")
        if len(args) > 1 and args[1] not in (..., 0) and not isinstance(args[1], str):
            raise _Unsupported("write() buffers other than ... are not supported")
        nonblock = (vs.nonblock or bool(flags & S["MSG_DONTWAIT"])) and not blocking_call
        conn = vs.conn
        if conn is None:
            return _fail(E.EPIPE if vs.connect_started else E.ENOTCONN)
        error = self._error_result(vs, writing=True)
        if error is not None:
            return error
        if conn.state in _SYNCHRONIZING:
            return _fail(E.EAGAIN) if nonblock else BLOCK
        done = int(state.get("written", 0))   # type: ignore[call-overload]
        try:
            sent = conn.send(bytes(count - done), self._now) if count > done else 0
        except TcpConnectionClosing:
            return _fail(E.EPIPE)
        except ConnectionError as exc:
            return _fail(_errno_of(exc))
        done += sent
        state["written"] = done
        if done >= count:
            return Outcome(done)
        if nonblock:
            return Outcome(done) if done else _fail(E.EAGAIN)
        return BLOCK

    _sys_send = _sys_write
    _sys_sendto = _sys_write

    def _sys_shutdown(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        how = args[1] if len(args) > 1 else None
        if vs.conn is None:
            return _fail(E.ENOTCONN)
        if how in (S["SHUT_WR"], S["SHUT_RDWR"]):
            vs.conn.shutdown(self._now)
        elif how != S["SHUT_RD"]:
            return _fail(E.EINVAL)
        return Outcome(0)

    def _sys_close(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        del self._sockets[vs.fd]
        if vs.listener is not None:
            vs.listener.close(self._now)
        if vs.conn is not None:
            if vs.linger_abort:
                vs.conn.abort(self._now)
            else:
                vs.conn.close(self._now)
        return Outcome(0)

    def _sys_fcntl(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        cmd = args[1] if len(args) > 1 else None
        if cmd == S["F_GETFL"]:
            return Outcome(S["O_RDWR"] | (S["O_NONBLOCK"] if vs.nonblock else 0))
        if cmd == S["F_SETFL"]:
            value = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            vs.nonblock = bool(value & S["O_NONBLOCK"])
            return Outcome(0)
        if cmd in (S["F_GETFD"], S["F_SETFD"]):
            return Outcome(0)
        raise _Unsupported(f"fcntl command {cmd} is not supported on the core target")

    def _sys_ioctl(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        cmd = args[1] if len(args) > 1 else None
        if cmd == S["SIOCATMARK"]:
            # Whether the next byte read is the urgent byte (RCV.UP - 1).
            conn = vs.conn
            mark = bool(conn is not None and getattr(conn, "at_urgent_mark", False))
            return Outcome(0, value=int(mark))
        raise _Unsupported(f"ioctl command {cmd} is not supported on the core target")

    def _sys_getsockname(self, args, expected, blocking_call, state, retry):
        self._sock(args)
        return Outcome(0)

    _sys_getpeername = _sys_getsockname

    @staticmethod
    def _int_arg(value: object) -> int:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, int):
            return value
        raise _Unsupported(f"option value {value!r} is not an integer")

    def _options(self, vs: _Socket) -> ConnectionOptions:
        ka = tuple(vs.keepalive) if vs.keepalive_on else None
        return replace(vs.options, keepalive=ka)   # type: ignore[arg-type]

    def _sys_setsockopt(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        if len(args) < 4:
            raise _Unsupported("setsockopt() needs level, name and value")
        level, name, value = args[1], args[2], args[3]
        opts = vs.options
        if level == S["SOL_SOCKET"] and name in (S["SO_REUSEADDR"], S["SO_REUSEPORT"]):
            return Outcome(0)
        if level == S["SOL_SOCKET"] and name == S["SO_OOBINLINE"] and self._int_arg(value):
            return Outcome(0)               # tcpstack always keeps urgent data inline
        if level == S["SOL_SOCKET"] and name == S["SO_LINGER"]:
            if not isinstance(value, dict):
                raise _Unsupported("SO_LINGER needs {onoff=..., linger=...}")
            onoff, linger = value.get("onoff", 0), value.get("linger", 0)
            if onoff and linger:
                raise _Unsupported("SO_LINGER with a timeout is not supported on the core target")
            vs.linger_abort = bool(onoff)
            return Outcome(0)
        if level == S["SOL_TCP"] and name == S["TCP_CONGESTION"]:
            if value not in ("cubic", "reno"):
                raise _Unsupported(f"congestion control {value!r} is not in tcpstack")
            new = replace(opts, cc=value)   # type: ignore[arg-type]
        elif level == S["SOL_TCP"] and name == S["TCP_NODELAY"]:
            new = replace(opts, nodelay=bool(self._int_arg(value)))
        elif level == S["SOL_TCP"] and name == S["TCP_MAXSEG"]:
            new = replace(opts, mss=self._int_arg(value))
        elif level == S["SOL_SOCKET"] and name == S["SO_SNDBUF"]:
            new = replace(opts, send_buffer=max(1, self._int_arg(value)))
        elif level == S["SOL_SOCKET"] and name == S["SO_RCVBUF"]:
            new = replace(opts, recv_buffer=max(1, self._int_arg(value)))
        elif level == S["SOL_SOCKET"] and name == S["SO_KEEPALIVE"]:
            on = bool(self._int_arg(value))
            if vs.conn is not None and on != vs.keepalive_on:
                raise _Unsupported("SO_KEEPALIVE on a connected socket is not supported on "
                                   "the core target")
            vs.keepalive_on = on
            return self._reapply(vs)
        elif level == S["SOL_TCP"] and name in (S["TCP_KEEPIDLE"], S["TCP_KEEPINTVL"],
                                                S["TCP_KEEPCNT"]):
            index = {S["TCP_KEEPIDLE"]: 0, S["TCP_KEEPINTVL"]: 1, S["TCP_KEEPCNT"]: 2}[name]
            if vs.conn is not None and vs.keepalive_on:
                raise _Unsupported("changing keepalive timing on a connected socket is not "
                                   "supported on the core target")
            vs.keepalive[index] = self._int_arg(value)
            return self._reapply(vs)
        else:
            raise _Unsupported(f"setsockopt level {level} option {name} is not supported on "
                               f"the core target")
        if vs.conn is not None:
            if new != replace(opts, nodelay=new.nodelay):
                raise _Unsupported("this setsockopt after connect/accept is not supported on "
                                   "the core target (only TCP_NODELAY is)")
            vs.conn.options = replace(vs.conn.options, nodelay=new.nodelay)
        vs.options = new
        return self._reapply(vs)

    def _reapply(self, vs: _Socket) -> Outcome:
        if vs.listener is not None:
            vs.listener.options = self._options(vs)
        return Outcome(0)

    def _sys_getsockopt(self, args, expected, blocking_call, state, retry):
        vs = self._sock(args)
        if len(args) < 3:
            raise _Unsupported("getsockopt() needs level and name")
        level, name = args[1], args[2]
        conn = vs.conn
        opts = conn.options if conn is not None else vs.options
        value: int
        if level == S["SOL_SOCKET"] and name == S["SO_ERROR"]:
            value = 0
            if conn is not None and conn.error is not None and not vs.error_reported and \
                    not isinstance(conn.error, TcpConnectionAborted):
                vs.error_reported = True
                value = _errno_of(conn.error)
        elif level == S["SOL_SOCKET"] and name == S["SO_RCVBUF"]:
            value = opts.recv_buffer
        elif level == S["SOL_SOCKET"] and name == S["SO_SNDBUF"]:
            value = opts.send_buffer
        elif level == S["SOL_SOCKET"] and name == S["SO_KEEPALIVE"]:
            value = int(vs.keepalive_on)
        elif level == S["SOL_TCP"] and name == S["TCP_NODELAY"]:
            value = int(opts.nodelay)
        elif level == S["SOL_TCP"] and name == S["TCP_MAXSEG"]:
            value = conn.mss if conn is not None and conn.state is not State.SYN_SENT else \
                (opts.mss or mtu_mss(self._env.mtu, self._env.ip_version == 6))
        elif level == S["SOL_TCP"] and name in (S["TCP_KEEPIDLE"], S["TCP_KEEPINTVL"],
                                                S["TCP_KEEPCNT"]):
            index = {S["TCP_KEEPIDLE"]: 0, S["TCP_KEEPINTVL"]: 1, S["TCP_KEEPCNT"]: 2}[name]
            value = int(vs.keepalive[index])
        else:
            raise _Unsupported(f"getsockopt level {level} option {name} is not supported on "
                               f"the core target")
        return Outcome(0, value=value)

    # -- tcp_info ---------------------------------------------------------------------
    def tcp_info(self, fd: int | None, flow: Flow | None) -> dict[str, int]:
        vs = self._sockets.get(fd) if fd is not None else None
        if vs is not None and vs.listener is not None and vs.conn is None:
            return {"tcpi_state": 10}
        conn = vs.conn if vs is not None else None
        if conn is None and flow is not None and self._stack is not None:
            conn = self._stack.connection((self._env.local_ip, flow.local_port),
                                          (self._env.remote_ip, flow.remote_port))
        if conn is None:
            return {"tcpi_state": 7}
        info = conn.info()
        mss = max(1, conn.mss)
        in_flight = max(0, (info["snd_max"] - info["snd_una"]) & 0xFFFFFFFF)
        ssthresh = info["ssthresh"]
        options = (1 if info["timestamps"] else 0) | (2 if info["sack"] else 0) | \
            (4 if info["wscale"] else 0)
        snd_ws, rcv_ws = info["wscale"] or (0, 0)
        return {
            "tcpi_state": _STATE_NUMBERS[conn.state],
            "tcpi_ca_state": _CA_NUMBERS.get(str(info["ca_state"]).upper(), 0),
            "tcpi_retransmits": conn.rtt.backoffs,
            "tcpi_backoff": conn.rtt.backoffs,
            "tcpi_options": options,
            "tcpi_snd_wscale": snd_ws,
            "tcpi_rcv_wscale": rcv_ws,
            "tcpi_rto": int(info["rto"] * 1e6),
            "tcpi_snd_mss": conn.mss,
            "tcpi_unacked": -(-in_flight // mss),
            "tcpi_pmtu": self._env.mtu,
            "tcpi_rtt": int((info["srtt"] or 0) * 1e6),
            "tcpi_rttvar": int((info["rttvar"] or 0) * 1e6),
            "tcpi_snd_ssthresh": min(ssthresh // mss, 0x7FFFFFFF) if ssthresh < 1 << 30
            else 0x7FFFFFFF,
            "tcpi_snd_cwnd": info["cwnd"] // mss,
            "tcpi_total_retrans": info["retransmits"],
            "tcpi_bytes_acked": info["bytes_sent"],
            "tcpi_bytes_received": info["bytes_received"],
            "tcpi_notsent_bytes": max(0, info["send_queue"] - in_flight),
        }


class _Unsupported(Exception):
    pass


class _BadFd(Exception):
    pass


def _parse_contradictory(raw: bytes) -> tuple[IpHeader, TcpSegment]:
    """Parse a packet whose control bits the codec refuses (SYN+FIN, SYN+RST):
    parsed with SYN cleared, the bits put back on the segment."""
    flags_at = (40 if raw[0] >> 4 == 6 else (raw[0] & 0x0F) * 4) + 13
    patched = bytearray(raw)
    flags = patched[flags_at]
    patched[flags_at] = flags & ~0x02
    ip, seg = parse_packet(bytes(patched), verify_checksum=False)
    return ip, dataclasses.replace(seg, flags=seg.flags | 0x02)
