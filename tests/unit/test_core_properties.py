"""Property test: random interleavings of application calls, deliveries, drops,
duplicates, hostile segments and clock advances never raise from the core and
keep its invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.stack import StackCore
from tcpstack.core.state import State
from tcpstack.wire.tcp import TcpOptions, TcpSegment

A, B = "10.0.0.1", "10.0.0.2"
PATTERN = bytes(range(251)) * 400          # 100400 bytes; prime period catches shifts

ops = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 1), st.integers(1, 5000)),
    st.tuples(st.just("recv"), st.integers(0, 1), st.integers(1, 8000)),
    st.tuples(st.just("deliver"), st.integers(0, 63), st.just(0)),
    st.tuples(st.just("deliver_all"), st.just(0), st.just(0)),
    st.tuples(st.just("deliver_all"), st.just(0), st.just(0)),
    st.tuples(st.just("send"), st.integers(0, 1), st.integers(1, 20000)),
    st.tuples(st.just("send"), st.integers(0, 1), st.integers(1, 20000)),
    st.tuples(st.just("deliver_all"), st.just(0), st.just(0)),
    st.tuples(st.just("recv"), st.integers(0, 1), st.integers(1, 20000)),
    st.tuples(st.just("recv"), st.integers(0, 1), st.integers(1, 20000)),
    st.tuples(st.just("drop"), st.integers(0, 63), st.just(0)),
    st.tuples(st.just("dup"), st.integers(0, 63), st.just(0)),
    st.tuples(st.just("advance"), st.integers(0, 1), st.integers(1, 3000)),
    st.tuples(st.just("shutdown"), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("close"), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("abort"), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("hostile"), st.integers(0, 1), st.integers(0, 2**32 - 1)),
)


def check_invariants(stack: StackCore) -> None:
    for c in stack.connections():
        assert c.snd_una <= c.snd_nxt <= c.snd_max
        assert len(c._sndbuf) <= c.options.send_buffer
        assert len(c._rcvbuf) + c._ooo.held <= c.options.recv_buffer + (1 << c._rcv_wscale)
        assert c.state is not State.CLOSED


def connection_snapshot(conn) -> tuple | None:
    """What a connection knows, for comparing two runs of one script."""
    if conn is None:
        return None
    return (conn.state, conn.snd_una, conn.snd_nxt, conn.snd_max, conn.rcv_nxt, conn.snd_wnd,
            conn.snd_wl1, conn.snd_wl2, conn.cc.cwnd, conn.rtt.srtt, conn._ts_recent,
            conn.timers(),
            conn._ack_pending, len(conn._rcvbuf), len(conn._sndbuf))


def run_script(script, options_on: bool, reno: bool, hostile: bool,
               handshake_first: bool = True,
               transcript: list | None = None) -> tuple[int, int]:
    """Play ``script``; returns the bytes received by each side.

    ``transcript``, when given, receives every segment either stack sends, in
    order, and after each step the state of both connections.
    """
    opts = ConnectionOptions(send_buffer=20000, recv_buffer=12000, timestamps=options_on,
                             sack=options_on, window_scale=options_on,
                             cc="reno" if reno else "cubic")
    cfg = dict(msl=1.0, syn_retries=3, retries2=4, fin_wait_2_timeout=5.0)
    a = StackCore(A, StackConfig(isn_secret=b"a" * 16, **cfg))
    b = StackCore(B, StackConfig(isn_secret=b"b" * 16, **cfg))
    listener = b.listen(80, options=opts)
    now = 0.0
    client = a.connect(B, 80, now, options=opts)
    conns = [client, None]
    sent = [0, 0]                    # bytes accepted by send() on each side
    got = [bytearray(), bytearray()]
    wire: list[tuple[StackCore, str, str, TcpSegment]] = []

    def collect():
        for s, dst in ((a, b), (b, a)):
            for src, daddr, seg in s.take_output():
                wire.append((dst, src, daddr, seg))
                if transcript is not None:
                    transcript.append((src, daddr, seg))

    def deliver(i):
        dst, src, daddr, seg = wire.pop(i % len(wire))
        dst.receive(src, daddr, seg, now)

    if handshake_first:
        script = [("deliver_all", 0, 0), *script]
    for op, x, y in script:
        collect()
        if conns[1] is None:
            conns[1] = listener.accept()
        conn = conns[x % 2]
        if op == "send" and conn is not None:
            try:
                n = conn.send(PATTERN[sent[x]:sent[x] + y], now)
                sent[x] += n
            except ConnectionError:
                pass
        elif op == "recv" and conn is not None:
            try:
                got[x] += conn.recv(y, now)
            except ConnectionError:
                pass
        elif op == "deliver" and wire:
            deliver(x)
        elif op == "deliver_all":
            for _ in range(300):
                collect()
                if not wire:
                    break
                deliver(0)
        elif op == "drop" and wire:
            wire.pop(x % len(wire))
        elif op == "dup" and wire:
            wire.append(wire[x % len(wire)])
        elif op == "advance":
            now += y / 1000.0 * (1 if x else 10)
            a.poll(now)
            b.poll(now)
        elif op in ("shutdown", "close", "abort") and conn is not None:
            getattr(conn, op)(now)
        elif op == "hostile" and hostile:
            target, src = (a, B) if x else (b, A)
            port_from, port_to = (80, client.local[1]) if x else (client.local[1], 80)
            seg = TcpSegment(port_from, port_to, y, (y * 2654435761) & 0xFFFFFFFF,
                             y & 0xFF, y & 0xFFFF, 0,
                             TcpOptions(timestamps=(y, y)) if y & 256 else TcpOptions(),
                             b"h" * (y % 3))
            target.receive(src, target.local_addr, seg, now)
        check_invariants(a)
        check_invariants(b)
        if transcript is not None:
            transcript.append(tuple(connection_snapshot(c) for c in conns))
        if not hostile:
            # Received bytes are a prefix of the bytes the other side sent.
            for i in (0, 1):
                assert len(got[i]) <= sent[1 - i]
                assert got[i] == PATTERN[:len(got[i])]
    return len(got[0]), len(got[1])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=30, max_size=150), st.booleans(), st.booleans(), st.booleans())
def test_random_interleavings_keep_invariants_and_byte_stream(script, options_on, reno, first):
    got = run_script(script, options_on, reno, hostile=False, handshake_first=first)
    event(f"data received: {'yes' if any(got) else 'no'}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=30, max_size=150), st.booleans(), st.booleans())
def test_hostile_segments_never_raise_from_the_core(script, options_on, reno):
    run_script(script, options_on, reno, hostile=True)
