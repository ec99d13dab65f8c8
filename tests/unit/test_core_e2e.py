"""Two stacks joined in memory: handshake, data both ways, four-way close
(StackCore API end to end)."""

from __future__ import annotations

import random

import pytest

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.stack import StackCore
from tcpstack.core.state import State

A, B = "10.0.0.1", "10.0.0.2"


def pump(a: StackCore, b: StackCore, now: float, drop=None) -> int:
    """Deliver every queued segment (both ways) until both are quiet."""
    moved = 0
    while True:
        batch = [(b, x) for x in a.take_output()] + [(a, x) for x in b.take_output()]
        if not batch:
            return moved
        for dst_stack, (src, dst, seg) in batch:
            moved += 1
            if drop is not None and drop(seg):
                continue
            dst_stack.receive(src, dst, seg, now)


def run_timers(stacks, now: float) -> None:
    for s in stacks:
        d = s.next_deadline()
        if d is not None and d <= now:
            s.poll(now)


def test_handshake_data_and_close_between_two_stacks():
    a = StackCore(A, StackConfig(isn_secret=b"a" * 16))
    b = StackCore(B, StackConfig(isn_secret=b"b" * 16))
    listener = b.listen(80)
    now = 0.0
    client = a.connect(B, 80, now)
    assert client.state is State.SYN_SENT
    pump(a, b, now)
    server = listener.accept()
    assert server is not None and listener.accept() is None
    assert client.state is server.state is State.ESTABLISHED
    assert client in a.take_changed() and listener in b.take_changed()
    assert client.info()["mss"] == 1448          # 1500 - 40 - 12 (timestamps)
    assert client.info()["sack"] and client.info()["wscale"] == (7, 7)

    up = bytes(range(256)) * 3000                 # 768000 bytes each way
    down = up[::-1]
    sent_up = sent_down = 0
    got_up, got_down = bytearray(), bytearray()
    while len(got_up) < len(up) or len(got_down) < len(down):
        if sent_up < len(up):
            sent_up += client.send(memoryview(up)[sent_up:], now)
        if sent_down < len(down):
            sent_down += server.send(memoryview(down)[sent_down:], now)
        pump(a, b, now)
        got_up += server.recv(1 << 20, now)
        got_down += client.recv(1 << 20, now)
        now += 0.001
        run_timers((a, b), now)
        assert now < 30
    assert got_up == up and got_down == down
    assert client.info()["retransmits"] == 0

    client.shutdown(now)                          # half-close: server may still send
    pump(a, b, now)
    assert client.state is State.FIN_WAIT_2 and server.state is State.CLOSE_WAIT
    assert server.at_eof and not client.at_eof
    server.send(b"after half-close", now)
    pump(a, b, now)
    assert client.recv(100, now) == b"after half-close"
    server.close(now)
    pump(a, b, now)
    assert client.state is State.TIME_WAIT and server.state is State.CLOSED
    assert client.at_eof
    now += 59.9
    run_timers((a, b), now)
    assert client.state is State.TIME_WAIT
    now += 0.2
    run_timers((a, b), now)
    assert client.state is State.CLOSED
    assert list(a.connections()) == [] and list(b.connections()) == []


def test_lost_segments_are_retransmitted_end_to_end():
    a = StackCore(A, StackConfig(isn_secret=b"a" * 16))
    b = StackCore(B, StackConfig(isn_secret=b"b" * 16))
    listener = b.listen(80, options=ConnectionOptions(nodelay=True))
    now = 0.0
    client = a.connect(B, 80, now, options=ConnectionOptions(nodelay=True))
    pump(a, b, now)
    server = listener.accept()
    data = bytes(range(256)) * 400
    counter = {"n": 0}

    def every_seventh(seg) -> bool:
        counter["n"] += 1
        return counter["n"] % 7 == 0

    sent = 0
    got = bytearray()
    while len(got) < len(data):
        if sent < len(data):
            sent += client.send(memoryview(data)[sent:], now)
        pump(a, b, now, drop=every_seventh)
        got += server.recv(1 << 20, now)
        now += 0.01
        run_timers((a, b), now)
        assert now < 120
    assert got == data
    assert client.info()["retransmits"] > 0


def test_connect_to_closed_port_is_refused():
    a = StackCore(A, StackConfig(isn_secret=b"a" * 16))
    b = StackCore(B, StackConfig(isn_secret=b"b" * 16))
    client = a.connect(B, 81, 0.0)
    pump(a, b, 0.0)
    assert client.state is State.CLOSED
    assert isinstance(client.error, ConnectionRefusedError)
    assert b.counters["drop_no_socket"] == 1


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("options", [ConnectionOptions(),
                                     ConnectionOptions(sack=False, timestamps=False,
                                                       window_scale=False),
                                     ConnectionOptions(send_buffer=3000, recv_buffer=2000)],
                         ids=["all-options", "no-options", "tiny-buffers"])
def test_echo_with_half_close_over_a_lossy_reordering_duplicating_link(seed, options):
    """Client sends, shuts down; server echoes until EOF, closes. Byte-exact, both ways."""
    rng = random.Random(seed)
    a = StackCore(A, StackConfig(isn_secret=bytes([seed]) * 16))
    b = StackCore(B, StackConfig(isn_secret=b"b" * 16))
    listener = b.listen(7, options=options)
    now = 0.0
    client = a.connect(B, 7, now, options=options)
    in_flight: list[tuple[float, float, StackCore, str, str, object]] = []
    payload = rng.randbytes(60_000)
    sent, echoed, backlog = 0, bytearray(), bytearray()
    server = None
    while not (client.at_eof and len(echoed) == len(payload)):
        assert now < 120, (client.info(), server and server.info())
        for src_stack, dst_stack in ((a, b), (b, a)):
            for src, dst, seg in src_stack.take_output():
                if rng.random() < 0.04:
                    continue                                     # loss
                for _ in range(2 if rng.random() < 0.03 else 1):  # duplication
                    late = rng.random() * 0.01 if rng.random() < 0.1 else 0.0
                    in_flight.append((now + 0.002 + late, rng.random(), dst_stack, src, dst, seg))
        in_flight.sort(key=lambda x: (x[0], x[1]))
        while in_flight and in_flight[0][0] <= now:
            _, _, dst_stack, src, dst, seg = in_flight.pop(0)
            dst_stack.receive(src, dst, seg, now)
        if server is None:
            server = listener.accept()
        if sent < len(payload):
            sent += client.send(payload[sent:sent + 8192], now)
            if sent == len(payload):
                client.shutdown(now)
        echoed += client.recv(1 << 20, now)
        if server is not None and server.state is not State.CLOSED:
            backlog += server.recv(1 << 20, now)
            if backlog:
                del backlog[:server.send(bytes(backlog), now)]
            if server.at_eof and not backlog and server.state is State.CLOSE_WAIT:
                server.close(now)
        now += 0.001
        run_timers((a, b), now)
    assert bytes(echoed) == payload
