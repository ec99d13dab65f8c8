"""The stack: demultiplexing, listeners, ports, TIME-WAIT reuse, RST for no socket.

Sans-IO like ``Connection``: segments in through ``receive``, timers through
``poll``, segments out through ``take_output``. See docs/architecture.md.
Connections see the stack only through a ``StackContext`` (core/context.py).
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterable
from typing import Any

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.connection import Connection
from tcpstack.core.context import StackContext, Tracer
from tcpstack.core.errors import (
    TcpAddressInUse,
    TcpInvalidArgument,
    TcpNoFreePort,
    TcpTooManyConnections,
)
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.core.isn import IsnGenerator, port_offset
from tcpstack.core.options import default_mss, our_offer, syn_options, tsval_at
from tcpstack.core.state import State
from tcpstack.core.syncookies import (
    COUNTER_SECONDS,
    MAX_AGE,
    check_cookie,
    decode_ts_options,
    encode_ts_options,
    make_cookie,
)
from tcpstack.seq import Seq, seq_diff
from tcpstack.wire.icmp import IcmpError
from tcpstack.wire.tcp import ACK, FIN, RST, SYN, TcpOptions, TcpSegment

__all__ = ["Connection", "ConnectionOptions", "Listener", "StackConfig", "StackCore"]

_MASK = 0xFFFFFFFF
_PORT_OFFSETS_KEPT = 1024
_DEFAULT_OPTIONS = ConnectionOptions()


class Listener:
    """A passive OPEN on one port: SYN queue, accept queue and backlog."""

    def __init__(self, stack: StackCore, port: int, backlog: int,
                 options: ConnectionOptions | None, family: int | None = None) -> None:
        self._stack = stack
        self.port = port
        self.family = family        # 4 or 6: that family only (IPV6_V6ONLY); None: both
        self.backlog = max(1, backlog)
        self.options = options
        self._syn_queue: set[Connection] = set()
        self._accept_queue: deque[Connection] = deque()
        self.closed = False
        self._last_cookie: float | None = None   # when a SYN was last answered by a cookie
        self.syncookies_sent = 0
        self.syncookies_validated = 0
        self.syncookies_failed = 0

    def __repr__(self) -> str:
        return f"<Listener {self._stack.local_addr}:{self.port} pending={len(self._accept_queue)}>"

    @property
    def connection_options(self) -> ConnectionOptions:
        """The options its connections get (the defaults when none were given)."""
        return self.options or _DEFAULT_OPTIONS

    @property
    def state(self) -> State:
        return State.CLOSED if self.closed else State.LISTEN

    def pending(self) -> int:
        """Connections ready to be accepted."""
        return len(self._accept_queue)

    def info(self) -> dict:
        """An ``ss -lti`` style snapshot: queues and SYN cookies."""
        return {
            "state": str(self.state),
            "port": self.port,
            "family": self.family,
            "backlog": self.backlog,
            "syn_queue": len(self._syn_queue),
            "accept_queue": len(self._accept_queue),
            "syncookies_sent": self.syncookies_sent,
            "syncookies_validated": self.syncookies_validated,
            "syncookies_failed": self.syncookies_failed,
        }

    def accept(self) -> Connection | None:
        """The oldest ESTABLISHED (or later) connection, or None."""
        if not self._accept_queue:
            return None
        conn = self._accept_queue.popleft()
        self._stack._listener_of.pop(conn, None)
        return conn

    def close(self, now: float | None = None) -> None:
        """Stop listening. Connections established but not yet accepted are
        reset; half-open ones (SYN-RECEIVED) are forgotten without a word, as
        Linux does (``inet_csk_listen_stop``): under a SYN flood most of them
        are spoofed, and a RST to each would be backscatter. A peer that does
        answer our SYN-ACK then meets a closed port and gets its RST."""
        if self.closed:
            return
        self.closed = True
        stack = self._stack
        stack._listeners.pop(self.port, None)
        t = now if now is not None else 0.0
        for conn in list(self._syn_queue):
            stack._listener_of.pop(conn, None)
            conn.abort(t, reset=False, reason="with its listener")
        for conn in list(self._accept_queue):
            stack._listener_of.pop(conn, None)
            conn.abort(t)
        self._syn_queue.clear()
        self._accept_queue.clear()
        stack._ctx.changed.add(self)


class _Context(StackContext):
    """The stack's side of the two notifications a connection gives."""

    __slots__ = ("_stack",)

    def __init__(self, stack: StackCore, local_addr: str | tuple[str, ...],
                 tracer: Tracer | None) -> None:
        super().__init__(local_addr, stack.config, tracer)
        self._stack = stack

    def connection_established(self, conn: Connection) -> None:
        self._stack._on_established(conn)

    def connection_closed(self, conn: Connection) -> None:
        self._stack._on_closed(conn)


def _key(conn: Connection) -> tuple[int, str, int]:
    return (conn.local[1], conn.remote[0], conn.remote[1])


class StackCore:
    """All TCBs of one IPv4 address, one IPv6 address, or one of each (a dual
    stack): the sans-IO protocol core.

    ``local_addr`` is one address or a tuple of at most one per family
    (IPv6 as ``inet_ntop`` writes it, RFC 5952). A connection's local address
    is the stack's address of its peer's family."""

    def __init__(self, local_addr: str | tuple[str, ...], config: StackConfig | None = None,
                 tracer: Tracer | None = None) -> None:
        self.config = config or StackConfig()
        self._ctx = ctx = _Context(self, local_addr, tracer)
        self.local_addr = ctx.local_addr
        self.local_addrs: tuple[str, ...] = tuple(
            a for a in (ctx.local_addr4, ctx.local_addr6) if a is not None)
        self.counters: dict[str, int] = ctx.counters
        self._isn = IsnGenerator(self.config.isn_secret)
        self._conns: dict[tuple[int, str, int], Connection] = {}
        self._listeners: dict[int, Listener] = {}
        self._listener_of: dict[Connection, Listener] = {}   # passive, not yet accepted
        self._next_ephemeral = 0
        self._port_offsets: dict[tuple[str, int], int] = {}   # RFC 6056 F() per destination

    # ------------------------------------------------------------ public API
    def listen(self, port: int, backlog: int = 128, options: ConnectionOptions | None = None,
               family: int | None = None) -> Listener:
        """A passive OPEN on ``port`` for both families (like a socket on ``::``
        with IPV6_V6ONLY off), or for ``family`` 4 or 6 only."""
        if not 0 < port <= 65535:
            raise TcpInvalidArgument(f"port {port} is out of range 1-65535")
        if family not in (None, 4, 6):
            raise TcpInvalidArgument(f"address family {family}: 4, 6 or None (both)")
        if port in self._listeners:
            raise TcpAddressInUse(f"port {port} is already listening")
        listener = Listener(self, port, backlog, options, family)
        self._listeners[port] = listener
        return listener

    def connect(self, remote_addr: str, remote_port: int, now: float,
                local_port: int | None = None,
                options: ConnectionOptions | None = None) -> Connection:
        """RFC 9293 §3.10.1 active OPEN: a new connection in SYN-SENT."""
        if not 0 < remote_port <= 65535:
            raise TcpInvalidArgument(f"port {remote_port} is out of range 1-65535")
        if local_port is not None and not 0 < local_port <= 65535:
            raise TcpInvalidArgument(f"local port {local_port} is out of range 1-65535")
        local_addr = self._ctx.local_for(remote_addr)
        if local_addr is None:
            family = "IPv6" if ":" in remote_addr else "IPv4"
            raise TcpInvalidArgument(f"no {family} address on this stack to reach {remote_addr}")
        if len(self._conns) >= self.config.max_connections:
            self._ctx.count("max_connections_refused")
            raise TcpTooManyConnections(f"{len(self._conns)} connections: the stack's limit "
                                        "(max_connections)")
        if local_port is None:
            local_port = self._ephemeral_port(remote_addr, remote_port)
        elif (local_port, remote_addr, remote_port) in self._conns:
            raise TcpAddressInUse(f"{local_addr}:{local_port} -> {remote_addr}:"
                                  f"{remote_port} is already in use")
        iss, ts_offset = self._isn.isn_and_ts_offset(local_addr, local_port, remote_addr,
                                                     remote_port, now)
        conn = self._new_connection(local_port, remote_addr, remote_port, options, now, iss,
                                    passive=False, ts_offset=ts_offset)
        self._ctx.count("active_opens")
        conn.open_active(now)
        return conn

    def connections(self) -> Iterable[Connection]:
        return list(self._conns.values())

    def connection(self, local: tuple[str, int], remote: tuple[str, int]) -> Connection | None:
        """The connection with this 4-tuple (``local`` is this stack's address), or None."""
        if local[0] != self._ctx.local_for(remote[0]):
            return None
        return self._conns.get((local[1], remote[0], remote[1]))

    def listeners(self) -> Iterable[Listener]:
        return list(self._listeners.values())

    def take_output(self) -> list[tuple[str, str, TcpSegment]]:
        """The segments to put on the wire since the last call, in order."""
        return self._ctx.take_output()

    def take_changed(self) -> set[Connection | Listener]:
        ctx = self._ctx
        changed = ctx.changed
        ctx.changed = set()
        return changed

    def needs_service(self) -> bool:
        """Whether ``take_output()`` or ``take_changed()`` has something: a
        user call (a read that may have opened the window) left the runtime
        segments to write or owners to tell."""
        ctx = self._ctx
        return bool(ctx.changed) or ctx.has_output()

    def next_deadline(self) -> float | None:
        """The earliest timer deadline of any connection (None if no timer is armed)."""
        return self._ctx.timers.next_deadline()

    def poll(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        for table in self._ctx.timers.take_due(now):
            conn = table.owner
            if conn.state is not State.CLOSED:
                conn.fire_timers(now)
            table.reschedule()

    def close_all(self, now: float) -> None:
        """Abort every connection and stop every listener (stack shutdown)."""
        for listener in list(self._listeners.values()):
            listener.close(now)
        for conn in list(self._conns.values()):
            if conn.state is State.TIME_WAIT:
                conn.expire_time_wait(now)
            else:
                conn.abort(now)

    # ------------------------------------------------------------ input
    def receive(self, src_addr: str, dst_addr: str, seg: TcpSegment, now: float) -> None:
        """One parsed segment from the network. Never raises for hostile input."""
        ctx = self._ctx
        counters = self.counters
        counters["segments_in"] = counters.get("segments_in", 0) + 1
        if ctx.tracer is not None:
            ctx.trace(TraceEvent(now, EventKind.SEGMENT_IN, (dst_addr, seg.dst_port),
                                 (src_addr, seg.src_port), segment=seg))
        if dst_addr != ctx.local_for(src_addr):
            ctx.drop((dst_addr, seg.dst_port), (src_addr, seg.src_port), seg,
                     "wrong-address", now)
            return
        if seg.src_port == 0 or seg.dst_port == 0:
            ctx.drop((dst_addr, seg.dst_port), (src_addr, seg.src_port), seg, "port-zero", now)
            return
        conn = self._conns.get((seg.dst_port, src_addr, seg.src_port))
        if conn is not None:
            if (conn.state is State.TIME_WAIT and seg.flags & (SYN | ACK | RST) == SYN
                    and conn.accepts_new_incarnation(seg)):
                listener = self._listener_for(seg.dst_port, src_addr)
                if listener is not None:
                    # RFC 1122 4.2.2.13 / RFC 6191: a new SYN reopens TIME-WAIT; the new
                    # ISS lies above everything the old incarnation sent.
                    ctx.count("time_wait_reopened")
                    iss = conn.expire_time_wait(now)
                    self._listen_input(listener, src_addr, seg, now, iss=iss)
                    return
            conn.segment_arrives(seg, now)
            return
        listener = self._listener_for(seg.dst_port, src_addr)
        if listener is not None:
            self._listen_input(listener, src_addr, seg, now)
            return
        self._closed_input(src_addr, seg, now)

    def _listener_for(self, port: int, src_addr: str) -> Listener | None:
        """The listener on ``port`` that takes a SYN from ``src_addr``'s family."""
        listener = self._listeners.get(port)
        if listener is None or listener.family is None:
            return listener
        return listener if listener.family == (6 if ":" in src_addr else 4) else None

    def icmp_error(self, err: IcmpError, now: float) -> None:
        """One ICMP (or ICMPv6) error about a segment of ours (RFC 1122 §3.2.2,
        §4.2.3.9). Found and checked here, acted on by the connection
        (``Connection.icmp_error``, core/icmp.py). Never raises for hostile input."""
        ctx = self._ctx
        ctx.count("icmp_errors_in")
        ctx.count("icmp_" + err.kind.value.replace("-", "_"))
        local, remote = (err.src, err.src_port), (err.dst, err.dst_port)
        if ctx.tracer is not None:
            mtu = f" mtu {err.mtu}" if err.mtu else ""
            ctx.trace(TraceEvent(now, EventKind.ICMP, local, remote,
                                 reason=f"ICMP {err.kind.value}{mtu} from {err.reporter}, "
                                        f"quoting seq {int(err.seq)}"))
        if err.src != ctx.local_for(err.dst):
            ctx.count("icmp_wrong_address")
            return
        conn = self._conns.get((err.src_port, err.dst, err.dst_port))
        if conn is None or conn.state is State.TIME_WAIT:
            ctx.count("icmp_no_socket")
            return
        # RFC 5927 §4.1: act only on a report about data in flight, SND.UNA =<
        # SEG.SEQ < SND.NXT (SND.MAX here: SND.NXT rewinds after a timeout).
        # A blind attacker must guess a sequence number in the window.
        if seq_diff(err.seq, conn.snd_una) < 0 or seq_diff(err.seq, conn.snd_max) >= 0:
            ctx.count("icmp_out_of_window")
            return
        conn.icmp_error(err, now)

    def _closed_input(self, src_addr: str, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.1: no TCB and no listener."""
        local, remote = (self._local_for(src_addr), seg.dst_port), (src_addr, seg.src_port)
        if seg.flags & RST:
            self._ctx.drop(local, remote, seg, "rst-no-socket", now)   # never answer a RST
            return
        self._ctx.drop(local, remote, seg, "no-socket", now)
        if not self._ctx.rst_allowed(now):
            self._ctx.count("rsts_rate_limited")
            return
        if seg.flags & ACK:
            rst = TcpSegment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            rst = TcpSegment(seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len) & _MASK,
                             RST | ACK, 0)
        self._ctx.emit(local, remote, rst, now)

    def _listen_input(self, listener: Listener, src_addr: str, seg: TcpSegment, now: float,
                      iss: Seq | None = None) -> None:
        """RFC 9293 §3.10.7.2 LISTEN STATE."""
        ctx = self._ctx
        flags = seg.flags
        local_addr = self._local_for(src_addr)
        local, remote = (local_addr, seg.dst_port), (src_addr, seg.src_port)
        if flags & RST:
            ctx.drop(local, remote, seg, "rst-to-listener", now)   # first: ignore RST
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(listener, src_addr, seg, now):
                return
            # Second: any ACK is bad here: <SEQ=SEG.ACK><CTL=RST>.
            ctx.drop(local, remote, seg, "ack-to-listener", now)
            ctx.emit(local, remote, TcpSegment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0),
                     now)
            return
        if not flags & SYN:
            ctx.drop(local, remote, seg, "listener-no-syn", now)   # fourth: other text
            return
        # Third: SYN. A SYN with FIN is nonsense (RFC 9293 leaves it to the
        # stack); Linux drops it (tcp_v4_rcv -> tcp_rcv_state_process), so do we.
        if flags & FIN:
            ctx.drop(local, remote, seg, "syn-fin-to-listener", now)
            return
        if len(listener._accept_queue) >= listener.backlog:
            # Nobody accepts: a new connection could not be taken (Linux drops too).
            ctx.drop(local, remote, seg, "listen-backlog-full", now)
            return
        if len(self._conns) >= self.config.max_connections:
            ctx.drop(local, remote, seg, "max-connections", now)
            return
        if len(listener._syn_queue) >= listener.backlog:
            # The SYN queue is full (a SYN flood, or a slow handshake storm):
            # answer with a cookie and keep nothing (RFC 4987 §3.6).
            if self.config.syncookies:
                self._send_cookie(listener, src_addr, seg, now)
            else:
                ctx.drop(local, remote, seg, "syn-queue-full", now)
            return
        if iss is None:
            iss = self._isn.isn(local_addr, seg.dst_port, src_addr, seg.src_port, now)
        conn = self._new_connection(seg.dst_port, src_addr, seg.src_port, listener.options,
                                    now, iss, passive=True)
        self._listener_of[conn] = listener
        listener._syn_queue.add(conn)
        ctx.count("passive_opens")
        if seg.payload:
            ctx.count("syn_data_ignored")        # no TFO: the peer will resend it
        conn.open_passive(seg, now)

    def _new_connection(self, local_port: int, remote_addr: str, remote_port: int,
                        options: ConnectionOptions | None, now: float, iss: Seq,
                        passive: bool, ts_offset: int | None = None) -> Connection:
        if ts_offset is None:
            ts_offset = self._isn.ts_offset(self._local_for(remote_addr), local_port,
                                            remote_addr, remote_port)
        conn = Connection(self._ctx, local_port, remote_addr, remote_port, options, now, iss,
                          passive=passive, ts_offset=ts_offset)
        self._conns[local_port, remote_addr, remote_port] = conn
        return conn

    # ------------------------------------------------------------ SYN cookies
    def _send_cookie(self, listener: Listener, src_addr: str, seg: TcpSegment,
                     now: float) -> None:
        """A SYN-ACK whose ISS is a cookie (core/syncookies.py); no state is kept."""
        ctx = self._ctx
        offered = seg.options
        ipv6 = ":" in src_addr
        ours = our_offer(listener.connection_options, self.config.mtu, ipv6)
        tuple4 = (self._local_for(src_addr), seg.dst_port, src_addr, seg.src_port)
        iss = make_cookie(self.config.isn_secret, tuple4, seg.seq,
                          offered.mss or default_mss(ipv6), now)
        tsval = 0
        if ours.timestamps is not None and offered.timestamps is not None:
            offset = self._isn.ts_offset(*tuple4)
            tsval = encode_ts_options(tsval_at(now, offset), offered.wscale,
                                      offered.sack_permitted and ours.sack_permitted)
        options = syn_options(ours, tsval, offered)
        window = min(listener.connection_options.recv_buffer, 0xFFFF)
        synack = TcpSegment(seg.dst_port, seg.src_port, iss, (seg.seq + 1) & _MASK, SYN | ACK,
                            window, 0, options)
        listener._last_cookie = now
        listener.syncookies_sent += 1
        ctx.count("syncookies_sent")
        ctx.emit((tuple4[0], seg.dst_port), (src_addr, seg.src_port), synack, now)

    def _cookie_ack(self, listener: Listener, src_addr: str, seg: TcpSegment,
                    now: float) -> bool:
        """An ACK to a listener that may answer a cookie: True if it was one (the
        connection is built, or it is dropped because nobody accepts)."""
        last = listener._last_cookie
        if last is None or now - last > MAX_AGE * COUNTER_SECONDS or seg.flags & RST:
            return False                         # no cookie out recently: not ours
        tuple4 = (self._local_for(src_addr), seg.dst_port, src_addr, seg.src_port)
        mss = check_cookie(self.config.isn_secret, tuple4, (seg.seq - 1) & _MASK,
                           (seg.ack - 1) & _MASK, now)
        ctx = self._ctx
        if mss is None:
            listener.syncookies_failed += 1
            ctx.count("syncookies_failed")
            return False
        if (len(listener._accept_queue) >= listener.backlog
                or len(self._conns) >= self.config.max_connections):
            ctx.drop((tuple4[0], seg.dst_port), (src_addr, seg.src_port), seg,
                     "listen-backlog-full", now)
            return True
        listener.syncookies_validated += 1
        ctx.count("syncookies_validated")
        ts = seg.options.timestamps
        ours = our_offer(listener.connection_options, self.config.mtu, ":" in src_addr)
        if ts is not None and ours.timestamps is not None:
            wscale, sack = decode_ts_options(ts[1])
            peer_syn = TcpOptions(mss=mss, wscale=wscale, sack_permitted=sack,
                                  timestamps=(ts[0], 0))
        else:
            peer_syn = TcpOptions(mss=mss)       # no timestamps: no wscale, no SACK
        conn = self._new_connection(seg.dst_port, src_addr, seg.src_port, listener.options,
                                    now, Seq(seg.ack - 1), passive=True)
        self._listener_of[conn] = listener
        listener._syn_queue.add(conn)
        ctx.count("passive_opens")
        conn.open_from_cookie(seg, peer_syn, now)
        return True

    # ------------------------------------------------------------ from connections
    def _on_established(self, conn: Connection) -> None:
        listener = self._listener_of.get(conn)
        if listener is not None and conn in listener._syn_queue:
            listener._syn_queue.discard(conn)
            listener._accept_queue.append(conn)
            self._ctx.changed.add(listener)

    def _on_closed(self, conn: Connection) -> None:
        key = _key(conn)
        if self._conns.get(key) is conn:
            del self._conns[key]
        listener = self._listener_of.pop(conn, None)
        if listener is not None:
            listener._syn_queue.discard(conn)
        self._ctx.changed.add(conn)

    def _local_for(self, remote_addr: str) -> str:
        """Our address facing ``remote_addr`` (its family was checked on the way in)."""
        return self._ctx.local_for(remote_addr) or self.local_addr

    def _ephemeral_port(self, remote_addr: str, remote_port: int) -> int:
        """RFC 6056 §3.3.3 (Algorithm 3): hashed offset plus a counter."""
        lo, hi = self.config.ephemeral_ports
        count = hi - lo + 1
        key = (remote_addr, remote_port)
        offset = self._port_offsets.get(key)
        if offset is None:     # a keyed hash: worth keeping for the next connect
            if len(self._port_offsets) >= _PORT_OFFSETS_KEPT:
                self._port_offsets.clear()
            offset = port_offset(self.config.isn_secret, self._local_for(remote_addr),
                                 remote_addr, remote_port)
            self._port_offsets[key] = offset
        for _ in range(count):
            port = lo + (self._next_ephemeral + offset) % count
            self._next_ephemeral += 1
            if (port, remote_addr, remote_port) not in self._conns and \
                    port not in self._listeners:
                return port
        raise TcpNoFreePort(f"no free local port for {remote_addr}:{remote_port}")


def __getattr__(name: str) -> Any:
    """``Stack`` was this class's name before ``StackCore``; kept for old imports."""
    if name == "Stack":
        warnings.warn("tcpstack.core.stack.Stack is now StackCore", DeprecationWarning,
                      stacklevel=2)
        return StackCore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
