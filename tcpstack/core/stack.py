"""The stack: demultiplexing, listeners, ports, TIME-WAIT reuse, RST for no socket.

Sans-IO like ``Connection``: segments in through ``receive``, timers through
``poll``, segments out through ``take_output``. See docs/architecture.md.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.connection import Connection
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.core.isn import IsnGenerator, port_offset
from tcpstack.core.state import State
from tcpstack.errors import UserError
from tcpstack.seq import Seq
from tcpstack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

__all__ = ["Connection", "ConnectionOptions", "Listener", "Stack", "StackConfig"]

Tracer = Callable[[TraceEvent], None]
_MASK = 0xFFFFFFFF
_PORT_OFFSETS_KEPT = 1024


class Listener:
    """A passive OPEN on one port: SYN queue, accept queue and backlog."""

    def __init__(self, stack: Stack, port: int, backlog: int,
                 options: ConnectionOptions | None) -> None:
        self._stack = stack
        self.port = port
        self.backlog = max(1, backlog)
        self.options = options
        self._syn_queue: set[Connection] = set()
        self._accept_queue: deque[Connection] = deque()
        self.closed = False

    def __repr__(self) -> str:
        return f"<Listener {self._stack.local_addr}:{self.port} pending={len(self._accept_queue)}>"

    @property
    def state(self) -> State:
        return State.CLOSED if self.closed else State.LISTEN

    def pending(self) -> int:
        """Connections ready to be accepted."""
        return len(self._accept_queue)

    def accept(self) -> Connection | None:
        """The oldest ESTABLISHED (or later) connection, or None."""
        if not self._accept_queue:
            return None
        conn = self._accept_queue.popleft()
        conn._listener = None
        return conn

    def close(self, now: float | None = None) -> None:
        """Stop listening; connections not yet accepted are reset."""
        if self.closed:
            return
        self.closed = True
        self._stack._listeners.pop(self.port, None)
        t = now if now is not None else 0.0
        for conn in list(self._syn_queue) + list(self._accept_queue):
            conn._listener = None
            conn.abort(t)
        self._syn_queue.clear()
        self._accept_queue.clear()
        self._stack._changed.add(self)


class Stack:
    """All TCBs of one IPv4 address."""

    def __init__(self, local_addr: str, config: StackConfig | None = None,
                 tracer: Tracer | None = None) -> None:
        self.local_addr = local_addr
        self.config = config or StackConfig()
        self._tracer = tracer
        self._isn = IsnGenerator(self.config.isn_secret)
        self._conns: dict[tuple[int, str, int], Connection] = {}
        self._listeners: dict[int, Listener] = {}
        self._out: list[tuple[str, str, TcpSegment]] = []
        self._changed: set = set()
        self.counters: dict[str, int] = {}
        self._next_ephemeral = 0
        self._port_offsets: dict[tuple[str, int], int] = {}   # RFC 6056 F() per destination
        self._challenge_second = -1
        self._challenge_count = 0
        # Timers: a heap of (deadline, tiebreak, conn) with lazy invalidation; the
        # connections touched since the last look are re-read (``_dirty``).
        self._timer_heap: list[tuple[float, int, Connection]] = []
        self._dirty: set[Connection] = set()
        self._tiebreak = itertools.count()

    # ------------------------------------------------------------ public API
    def listen(self, port: int, backlog: int = 128,
               options: ConnectionOptions | None = None) -> Listener:
        if not 0 < port <= 65535:
            raise UserError(f"port {port} is out of range 1-65535")
        if port in self._listeners:
            raise UserError(f"port {port} is already listening")
        listener = Listener(self, port, backlog, options)
        self._listeners[port] = listener
        return listener

    def connect(self, remote_addr: str, remote_port: int, now: float,
                local_port: int | None = None,
                options: ConnectionOptions | None = None) -> Connection:
        """RFC 9293 §3.10.1 active OPEN: a new connection in SYN-SENT."""
        if not 0 < remote_port <= 65535:
            raise UserError(f"port {remote_port} is out of range 1-65535")
        if local_port is None:
            local_port = self._ephemeral_port(remote_addr, remote_port)
        elif (local_port, remote_addr, remote_port) in self._conns:
            raise UserError(f"{self.local_addr}:{local_port} -> {remote_addr}:{remote_port} "
                            "is already in use")
        iss = self._isn.isn(self.local_addr, local_port, remote_addr, remote_port, now)
        conn = Connection(self, local_port, remote_addr, remote_port, options, now, iss)
        self._conns[conn._key] = conn
        self._dirty.add(conn)
        self._count("active_opens")
        conn._open_active(now)
        return conn

    def connections(self) -> Iterable[Connection]:
        return list(self._conns.values())

    def connection(self, local: tuple[str, int], remote: tuple[str, int]) -> Connection | None:
        """The connection with this 4-tuple (``local`` is this stack's address), or None."""
        if local[0] != self.local_addr:
            return None
        return self._conns.get((local[1], remote[0], remote[1]))

    def listeners(self) -> Iterable[Listener]:
        return list(self._listeners.values())

    def take_output(self) -> list[tuple[str, str, TcpSegment]]:
        out = self._out
        self._out = []
        return out

    def take_changed(self) -> set:
        changed = self._changed
        self._changed = set()
        return changed

    # Timers: one heap of (deadline, tiebreak, connection) for all connections.
    # A connection's entry may be earlier than its real deadline (``_deadline``,
    # recomputed whenever it is dirty): most deadlines only move later (every
    # ACK pushes the retransmission timer out), and a later one is pushed only
    # when the earlier entry reaches the top of the heap. ``_heap_deadline`` is
    # the connection's live entry; older entries are skipped when popped.

    def next_deadline(self) -> float | None:
        """The earliest timer deadline of any connection (None if no timer is armed)."""
        heap = self._refresh_timers()
        while heap:
            entry = heap[0]
            conn = entry[2]
            if self._entry_live(entry):
                if conn._deadline == entry[0]:
                    return entry[0]
                self._requeue(conn)              # its deadline moved later
            else:
                heapq.heappop(heap)
        return None

    def poll(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        heap = self._refresh_timers()
        due = []
        while heap and heap[0][0] <= now:
            entry = heap[0]
            conn = entry[2]
            if not self._entry_live(entry):
                heapq.heappop(heap)
            elif conn._deadline == entry[0]:
                heapq.heappop(heap)
                conn._heap_deadline = None
                due.append(conn)
            else:
                self._requeue(conn)
        for conn in due:
            self._dirty.add(conn)
            if conn.state is not State.CLOSED:
                conn._on_timers(now)

    def _entry_live(self, entry: tuple[float, int, Connection]) -> bool:
        """The heap entry is its connection's current one, and the connection lives."""
        conn = entry[2]
        return conn._heap_deadline == entry[0] and self._conns.get(conn._key) is conn

    def _requeue(self, conn: Connection) -> None:
        """Replace the connection's entry at the top of the heap with its real deadline."""
        heapq.heappop(self._timer_heap)
        conn._heap_deadline = None
        if conn._deadline is not None:
            self._push_deadline(conn, conn._deadline)

    def _push_deadline(self, conn: Connection, deadline: float) -> None:
        conn._heap_deadline = deadline
        heapq.heappush(self._timer_heap, (deadline, next(self._tiebreak), conn))

    def _refresh_timers(self) -> list[tuple[float, int, Connection]]:
        heap = self._timer_heap
        dirty = self._dirty
        if dirty:
            for conn in dirty:
                d = conn.next_deadline() if conn.state is not State.CLOSED else None
                conn._deadline = d
                if d is not None and (conn._heap_deadline is None or d < conn._heap_deadline):
                    self._push_deadline(conn, d)
            dirty.clear()
            if len(heap) > 4 * len(self._conns) + 64:
                # Too many stale entries (deadlines that kept moving earlier): rebuild.
                heap[:] = [(c._heap_deadline, next(self._tiebreak), c)
                           for c in self._conns.values() if c._heap_deadline is not None]
                heapq.heapify(heap)
        return heap

    def close_all(self, now: float) -> None:
        """Abort every connection and stop every listener (stack shutdown)."""
        for listener in list(self._listeners.values()):
            listener.close(now)
        for conn in list(self._conns.values()):
            if conn.state is State.TIME_WAIT:
                conn._terminate(now)
            else:
                conn.abort(now)

    # ------------------------------------------------------------ input
    def receive(self, src_addr: str, dst_addr: str, seg: TcpSegment, now: float) -> None:
        """One parsed segment from the network. Never raises for hostile input."""
        counters = self.counters
        counters["segments_in"] = counters.get("segments_in", 0) + 1
        if self._tracer is not None:
            self._tracer(TraceEvent(now, EventKind.SEGMENT_IN, (dst_addr, seg.dst_port),
                                    (src_addr, seg.src_port), segment=seg))
        if dst_addr != self.local_addr:
            self._drop((dst_addr, seg.dst_port), (src_addr, seg.src_port), seg,
                       "wrong-address", now)
            return
        if seg.src_port == 0 or seg.dst_port == 0:
            self._drop((dst_addr, seg.dst_port), (src_addr, seg.src_port), seg, "port-zero", now)
            return
        conn = self._conns.get((seg.dst_port, src_addr, seg.src_port))
        if conn is not None:
            if (conn.state is State.TIME_WAIT and seg.flags & (SYN | ACK | RST) == SYN
                    and self._time_wait_reusable(conn, seg)):
                listener = self._listeners.get(seg.dst_port)
                if listener is not None:
                    # RFC 1122 4.2.2.13 / RFC 6191: a new SYN reopens TIME-WAIT; the new
                    # ISS lies above everything the old incarnation sent.
                    self._count("time_wait_reopened")
                    conn._terminate(now)
                    self._listen_input(listener, src_addr, seg, now,
                                       iss=Seq(int(conn.snd_max) + 65535 + 2))
                    return
            self._dirty.add(conn)
            conn._input(seg, now)
            return
        listener = self._listeners.get(seg.dst_port)
        if listener is not None:
            self._listen_input(listener, src_addr, seg, now)
            return
        self._closed_input(src_addr, seg, now)

    @staticmethod
    def _time_wait_reusable(conn: Connection, seg: TcpSegment) -> bool:
        """RFC 6191 §2: timestamps newer, or (no timestamps) a sequence number above RCV.NXT."""
        ts = seg.options.timestamps
        if conn._ts_ok and ts is not None:
            d = (ts[0] - conn._ts_recent) & _MASK
            return 0 < d < (1 << 31)
        return Seq(seg.seq) > conn.rcv_nxt

    def _closed_input(self, src_addr: str, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.1: no TCB and no listener."""
        local, remote = (self.local_addr, seg.dst_port), (src_addr, seg.src_port)
        if seg.flags & RST:
            self._drop(local, remote, seg, "rst-no-socket", now)   # never answer a RST
            return
        self._drop(local, remote, seg, "no-socket", now)
        if seg.flags & ACK:
            rst = TcpSegment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            rst = TcpSegment(seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len) & _MASK,
                             RST | ACK, 0)
        self._emit_raw(src_addr, rst, now)

    def _listen_input(self, listener: Listener, src_addr: str, seg: TcpSegment, now: float,
                      iss: Seq | None = None) -> None:
        """RFC 9293 §3.10.7.2 LISTEN STATE."""
        flags = seg.flags
        local, remote = (self.local_addr, seg.dst_port), (src_addr, seg.src_port)
        if flags & RST:
            self._drop(local, remote, seg, "rst-to-listener", now)   # first: ignore RST
            return
        if flags & ACK:
            # Second: any ACK is bad here: <SEQ=SEG.ACK><CTL=RST>.
            self._drop(local, remote, seg, "ack-to-listener", now)
            self._emit_raw(src_addr, TcpSegment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0),
                           now)
            return
        if not flags & SYN:
            self._drop(local, remote, seg, "listener-no-syn", now)   # fourth: other text
            return
        # Third: SYN.
        if len(listener._syn_queue) + len(listener._accept_queue) >= listener.backlog:
            self._drop(local, remote, seg, "listen-backlog-full", now)
            return
        if iss is None:
            iss = self._isn.isn(self.local_addr, seg.dst_port, src_addr, seg.src_port, now)
        conn = Connection(self, seg.dst_port, src_addr, seg.src_port, listener.options, now,
                          iss, listener=listener)
        self._conns[conn._key] = conn
        self._dirty.add(conn)
        listener._syn_queue.add(conn)
        self._count("passive_opens")
        if flags & FIN or seg.payload:
            self._count("syn_data_ignored")      # no TFO: the peer will resend it
        conn._open_passive(seg, now)

    # ------------------------------------------------------------ called by connections
    def _count(self, name: str, n: int = 1) -> None:
        c = self.counters
        c[name] = c.get(name, 0) + n

    def _drop(self, local: tuple[str, int] | None, remote: tuple[str, int] | None,
              seg: TcpSegment | None, reason: str, now: float) -> None:
        self._count("drop_" + reason.replace("-", "_"))
        if self._tracer is not None:
            self._tracer(TraceEvent(now, EventKind.DROP, local, remote, segment=seg,
                                    reason=reason))

    def _emit(self, conn: Connection, seg: TcpSegment, now: float) -> None:
        self._out.append((self.local_addr, conn.remote[0], seg))
        c = self.counters
        c["segments_out"] = c.get("segments_out", 0) + 1
        if seg.flags & RST:
            self._count("resets_sent")
        if self._tracer is not None:
            self._tracer(TraceEvent(now, EventKind.SEGMENT_OUT, conn.local, conn.remote,
                                    segment=seg))

    def _emit_raw(self, remote_addr: str, seg: TcpSegment, now: float) -> None:
        self._out.append((self.local_addr, remote_addr, seg))
        self._count("segments_out")
        if seg.flags & RST:
            self._count("resets_sent")
        if self._tracer is not None:
            self._tracer(TraceEvent(now, EventKind.SEGMENT_OUT, (self.local_addr, seg.src_port),
                                    (remote_addr, seg.dst_port), segment=seg))

    def _challenge_ack_allowed(self, now: float) -> bool:
        """RFC 5961 §7: at most ``challenge_ack_limit`` challenge ACKs per second."""
        second = int(now)
        if second != self._challenge_second:
            self._challenge_second = second
            self._challenge_count = 0
        if self._challenge_count >= self.config.challenge_ack_limit:
            return False
        self._challenge_count += 1
        return True

    def _state_changed(self, conn: Connection, old: State, new: State) -> None:
        self._changed.add(conn)
        self._count("state_" + new.name.lower())

    def _established(self, conn: Connection) -> None:
        listener = conn._listener
        if listener is not None and conn in listener._syn_queue:
            listener._syn_queue.discard(conn)
            listener._accept_queue.append(conn)
            self._changed.add(listener)

    def _remove(self, conn: Connection) -> None:
        if self._conns.get(conn._key) is conn:
            del self._conns[conn._key]
        listener = conn._listener
        if listener is not None:
            listener._syn_queue.discard(conn)
        self._changed.add(conn)

    def _ephemeral_port(self, remote_addr: str, remote_port: int) -> int:
        """RFC 6056 §3.3.3 (Algorithm 3): hashed offset plus a counter."""
        lo, hi = self.config.ephemeral_ports
        count = hi - lo + 1
        key = (remote_addr, remote_port)
        offset = self._port_offsets.get(key)
        if offset is None:     # a keyed hash: worth keeping for the next connect
            if len(self._port_offsets) >= _PORT_OFFSETS_KEPT:
                self._port_offsets.clear()
            offset = port_offset(self.config.isn_secret, self.local_addr, remote_addr,
                                 remote_port)
            self._port_offsets[key] = offset
        for _ in range(count):
            port = lo + (self._next_ephemeral + offset) % count
            self._next_ephemeral += 1
            if (port, remote_addr, remote_port) not in self._conns and \
                    port not in self._listeners:
                return port
        raise UserError(f"no free local port for {remote_addr}:{remote_port}")
