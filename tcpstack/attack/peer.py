"""A crafted TCP peer: the attacker completes a handshake itself and then sends
whatever segments it likes on the established connection.

Offsets, not sequence numbers: byte ``0`` of our stream is ISS + 1 and byte
``0`` of the target's is IRS + 1, so nothing here wraps. The peer reads
every reply on its 4-tuple from the tap (``frames.open_tap``) and keeps what
a sender needs: the highest cumulative ACK, the highest byte the target has
acknowledged or SACKed, the right edge of its window, RSTs and SYNs seen,
and the target's in-order data (acknowledged at once, so an echo works).
"""

from __future__ import annotations

import bisect
import select
import socket
import time
from collections.abc import Callable, Sequence

from tcpstack.attack.frames import Burst, LinkCounter, Reply, frame, parse_reply
from tcpstack.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment

MASK = 0xFFFFFFFF
OUR_WINDOW = 65535
OUR_WSCALE = 7
OUR_MSS = 1460
WINDOW_WAIT = 0.3                            # seconds a closed window may stall a pump
INFLIGHT = 2048                              # segments ahead of the target's answers: half
                                             # the TUN's queue, so tcpstack's link never
                                             # overflows while tcpstack keeps up
PATTERN = bytes(range(256)) * 64             # 16 KiB; data at offset o is PATTERN[o % 256 ...]


class PeerError(Exception):
    """The crafted connection could not be set up (one line)."""


def payload_at(offset: int, length: int) -> bytes:
    """The bytes of our stream at ``offset`` (a fixed pattern, so overlaps agree)."""
    out = bytearray()
    while length > 0:
        start = offset % 256
        piece = PATTERN[start:start + min(length, len(PATTERN) - start)]
        out += piece
        offset += len(piece)
        length -= len(piece)
    return bytes(out)


def _signed(value: int) -> int:
    value &= MASK
    return value - (1 << 32) if value & 0x80000000 else value


class Peer:
    def __init__(self, sock: socket.socket, src: str, sport: int, dst: str, dport: int,
                 iss: int, link: LinkCounter | None = None) -> None:
        self.sock = sock
        self.link = link
        self.fd = sock.fileno()
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self._src_int = int.from_bytes(socket.inet_aton(src), "big")
        self._dst_int = int.from_bytes(socket.inet_aton(dst), "big")
        self.iss = iss & MASK
        self.snd_base = (iss + 1) & MASK
        self.rcv_base = 0
        self.peer_wscale = 0
        self.peer_mss = 536
        self.established = False
        # What the target told us.
        self.packets = 0           # segments from the target on our 4-tuple
        self.pure_acks = 0         # ... of them without data, SYN, FIN or RST
        self.rsts = 0
        self.syns = 0
        self.ack_off = 0           # highest cumulative ACK
        self.edge_off = 0          # highest byte acknowledged or SACKed
        self.right_off = 0         # how far its window lets us send
        self.window = 0            # its last window, scaled
        self.last_rx = 0.0         # time.monotonic() of the latest segment
        self.received = bytearray()   # its in-order data
        self.fin_received = False
        self._need_ack = False
        self.snd_nxt_off = 0       # where our next new byte goes (the workloads move it)
        self._buf = bytearray(1 << 17)
        self._view = memoryview(self._buf)

    # -- building frames ----------------------------------------------------------------

    @property
    def rcv_nxt(self) -> int:
        return (self.rcv_base + len(self.received) + (1 if self.fin_received else 0)) & MASK

    def seq_of(self, offset: int) -> int:
        return (self.snd_base + offset) & MASK

    def segment(self, offset: int, payload: bytes = b"", flags: int = ACK,
                seq: int | None = None, ack: int | None = None,
                options: TcpOptions | None = None) -> bytes:
        """A frame of ours: data at ``offset`` (or any ``seq``), ACKing what we got."""
        seg = TcpSegment(self.sport, self.dport,
                         self.seq_of(offset) if seq is None else seq & MASK,
                         self.rcv_nxt if ack is None else ack & MASK,
                         flags, OUR_WINDOW,
                         options=options or TcpOptions(), payload=payload)
        return frame(self.src, self.dst, seg)

    def data_frames(self, start: int, end: int, size: int,
                    flags: int = ACK) -> tuple[list[bytes], list[int]]:
        """Segments of ``size`` bytes covering [start, end) and each one's end offset."""
        frames, ends = [], []
        for off in range(start, end, size):
            length = min(size, end - off)
            frames.append(self.segment(off, payload_at(off, length), flags))
            ends.append(off + length)
        return frames, ends

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    # -- the handshake ----------------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> None:
        syn = self.segment(0, flags=SYN, seq=self.iss, ack=0,
                           options=TcpOptions(mss=OUR_MSS, wscale=OUR_WSCALE,
                                              sack_permitted=True))
        deadline = time.monotonic() + timeout
        next_syn = 0.0
        while not self.established:
            now = time.monotonic()
            if now >= deadline:
                raise PeerError(f"no SYN-ACK from {self.dst}:{self.dport} in {timeout:.0f} s")
            if now >= next_syn:
                self.send(syn)
                next_syn = now + 1.0
            self._handshake_poll(min(deadline, next_syn) - now)
        self.send(self.segment(0))

    def _handshake_poll(self, timeout: float) -> None:
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return
        for reply in self._read():
            if reply.flags & RST:
                raise PeerError(f"{self.dst}:{self.dport} answered the SYN with a RST")
            if reply.flags & (SYN | ACK) == SYN | ACK and reply.ack == self.snd_base:
                self.rcv_base = (reply.seq + 1) & MASK
                self.peer_wscale = min(reply.wscale, 14) if reply.wscale is not None else 0
                self.peer_mss = reply.mss or 536
                self.right_off = reply.window         # a SYN's window is never scaled
                self.window = reply.window
                self.established = True
                return

    # -- replies ----------------------------------------------------------------------------

    def _read(self) -> list[Reply]:
        replies = []
        while True:
            try:
                n = self.sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            reply = parse_reply(self._view[:n])
            if (reply is not None and reply.src == self._dst_int and reply.dst == self._src_int
                    and reply.sport == self.dport and reply.dport == self.sport):
                replies.append(reply)
        return replies

    def poll(self, timeout: float = 0.0) -> int:
        """Take in what the target sent (waiting up to ``timeout`` for the first);
        returns how many segments. ACKs its data at once."""
        if timeout > 0:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return 0
        replies = self._read()
        if not replies:
            return 0
        now = time.monotonic()
        for reply in replies:
            self._take(reply, now)
        if self._need_ack:
            self._need_ack = False
            self.send(self.segment(self.snd_nxt_off))
        return len(replies)

    def _take(self, reply: Reply, now: float) -> None:
        self.packets += 1
        self.last_rx = now
        flags = reply.flags
        if flags & RST:
            self.rsts += 1
            return
        if flags & SYN:
            self.syns += 1                            # a retransmitted SYN-ACK: our ACK
            self._need_ack = True                     # of it was lost, send another
            return
        if flags & ACK:
            off = _signed(reply.ack - self.snd_base)
            if off > self.ack_off:
                self.ack_off = off
            edge = off
            for _left, right in reply.sack:
                edge = max(edge, _signed(right - self.snd_base))
            if edge > self.edge_off:
                self.edge_off = edge
            self.window = reply.window << self.peer_wscale
            if off + self.window > self.right_off:
                self.right_off = off + self.window
        payload = reply.payload
        if not payload and not flags & FIN:
            self.pure_acks += 1
            return
        start = _signed(reply.seq - self.rcv_base)
        have = len(self.received)
        if payload and start <= have < start + len(payload):
            self.received += payload[have - start:]
        if flags & FIN and start + len(payload) == len(self.received):
            self.fin_received = True
        self._need_ack = True

    # -- sending many segments, paced by the target's answers -----------------------------

    def pump(self, burst: Burst, ends: Sequence[int] | None = None, start: int = 0,
             inflight: int = INFLIGHT, deadline: float = float("inf"),
             stall: float | None = None) -> int:
        """Send ``burst`` frames from index ``start`` on, never beyond the right edge
        of the target's window when ``ends`` (each frame's end offset, ascending)
        is given, and at most ``inflight`` ahead of the target:

        - with the router's link counter (``self.link``), at most ``inflight`` of
          our frames wait in the target's link queue (tcpstack's TUN: it is read
          as fast as tcpstack reads; a kernel target takes them at once);
        - without, a frame counts as taken when a reply arrived (one per frame
          at most) or the target acknowledged or SACKed its end; after ``stall``
          s of silence (default 5 ms, 50 ms with ``ends``) every frame sent
          counts as taken (a target that answers rarely, by policy).

        Returns the index after the last frame sent."""
        if stall is None:
            stall = 0.005 if ends is None else 0.05
        batch = max(1, min(256, inflight // 8))
        sent = start
        packets0 = self.packets
        link0 = self.link.gone() if self.link else 0
        credit = start           # frames counted as taken without an answer
        last_event = time.monotonic()
        while sent < burst.count:
            now = time.monotonic()
            if now >= deadline:
                break
            if self.link:
                done = start + self.link.gone() - link0
            else:
                done = credit + (self.packets - packets0)
                if ends is not None:
                    done = max(done, bisect.bisect_right(ends, self.edge_off))
            window_limit = (burst.count if ends is None
                            else bisect.bisect_right(ends, self.right_off))
            limit = min(burst.count, done + inflight, window_limit)
            # Refill in batches (one sendmmsg for many frames), unless nothing is
            # in flight, the burst ends or the answers have paused.
            if limit > sent and (limit - sent >= batch or limit == burst.count
                                 or sent <= done or now - last_event > 0.002):
                burst.send(self.fd, sent, limit - sent)
                sent = limit
                last_event = now
                self.poll(0)
                continue
            if self.poll(0.0005 if self.link else min(stall, 0.002)):
                last_event = time.monotonic()
            elif self.link:
                if window_limit <= sent and now - last_event > WINDOW_WAIT:
                    break                             # the window stays shut
            elif window_limit > sent and now - last_event > stall:
                credit += max(0, sent - done)         # silent target: go on
                last_event = now
            elif now - last_event > WINDOW_WAIT:
                break                                 # the window stays shut
        return sent

    def settle(self, until: Callable[[], bool] | None = None, quiet: float = 0.05,
               deadline: float = float("inf")) -> None:
        """Take in replies until ``until()`` holds, or ``quiet`` s pass without one."""
        last = time.monotonic()
        while until is None or not until():
            now = time.monotonic()
            if now >= deadline or now - last >= quiet:
                return
            if self.poll(min(quiet, deadline - now, 0.01)):
                last = time.monotonic()

    def deliver(self, burst: Burst, ends: Sequence[int], goal: int, deadline: float,
                inflight: int = INFLIGHT) -> bool:
        """Get bytes up to ``goal`` cumulatively acknowledged: send the segments from
        the first one not yet acknowledged, again after each quiet spell (what the
        target dropped is resent, as a sender's recovery would). True on success."""
        while self.ack_off < goal:
            if time.monotonic() >= deadline or self.rsts:
                return False
            first = bisect.bisect_right(ends, self.ack_off)
            self.pump(burst, ends, start=first, inflight=inflight, deadline=deadline)
            self.settle(lambda: self.ack_off >= goal, quiet=0.05, deadline=deadline)
        return True

    def reset(self) -> None:
        """Abort: one RST at our next sequence number."""
        self.send(self.segment(self.snd_nxt_off, flags=RST | ACK))

    def close(self, deadline: float) -> bool:
        """FIN, then wait for the target's FIN and the ACK of ours. True when both came."""
        fin = self.segment(self.snd_nxt_off, flags=FIN | ACK)
        goal = self.snd_nxt_off + 1
        self.snd_nxt_off = goal            # our ACKs from now on come after the FIN
        next_send = 0.0
        while not (self.fin_received and self.ack_off >= goal):
            now = time.monotonic()
            if now >= deadline or self.rsts:
                return False
            if now >= next_send and self.ack_off < goal:
                self.send(fin)
                next_send = now + 0.3
            self.poll(0.01)
        return True

    def echo(self, length: int, deadline: float) -> bool:
        """Send ``length`` new bytes and wait until the target echoed all we sent so
        far and acknowledged them. True when the echo matches byte for byte."""
        start = self.snd_nxt_off
        frames, ends = self.data_frames(start, start + length, OUR_MSS, ACK | PSH)
        self.snd_nxt_off = start + length
        burst = Burst(frames)
        if not self.deliver(burst, ends, start + length, deadline):
            return False
        total = self.snd_nxt_off
        self.settle(lambda: len(self.received) >= total, quiet=1.0, deadline=deadline)
        return bytes(self.received) == payload_at(0, total)
