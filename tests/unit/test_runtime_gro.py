"""Receive coalescing (software GRO) in front of the core."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tcpstack.runtime.gro import MAX_MERGED, ReceiveCoalescer
from tcpstack.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions, TcpSegment

A, B = "10.7.0.1", "10.7.0.2"
TS = TcpOptions(timestamps=(100, 200))


def data(seq: int, size: int, flags: int = ACK, **fields: object) -> TcpSegment:
    values: dict = {"src_port": 80, "dst_port": 4000, "seq": seq, "ack": 9, "flags": flags,
                    "window": 500, "options": TS, "payload": bytes([seq % 256]) * size}
    values.update(fields)
    return TcpSegment(**values)


def run(segments: list[TcpSegment]) -> tuple[list[TcpSegment], int]:
    out: list[TcpSegment] = []
    gro = ReceiveCoalescer(lambda src, dst, seg, now: out.append(seg))
    for seg in segments:
        gro.add(A, B, seg, 1.0)
    gro.flush()
    return out, gro.merged


def test_consecutive_segments_become_one_and_push_closes_the_batch():
    out, merged = run([data(0, 100), data(100, 100), data(200, 50, ACK | PSH), data(250, 10)])
    assert merged == 2 and len(out) == 2
    assert out[0].seq == 0 and out[0].flags == ACK | PSH and len(out[0].payload) == 250
    assert out[0].payload == data(0, 100).payload + data(100, 100).payload + data(200, 50).payload
    assert out[0].options == TS and out[0].ack == 9 and out[0].window == 500
    assert out[1] == data(250, 10)


def test_nothing_merges_when_anything_but_the_payload_differs():
    first = data(0, 100)
    for other in (data(100, 100, ack=10), data(100, 100, window=501),
                  data(100, 100, options=TcpOptions(timestamps=(101, 200))),
                  data(100, 100, src_port=81), data(101, 100), data(100, 100, ACK | FIN),
                  data(100, 0), data(100, 100, urgent=1)):
        out, merged = run([first, other])
        assert merged == 0 and out == [first, other]


def test_control_segments_and_pure_acks_pass_through_in_order():
    syn = TcpSegment(80, 4000, 7, 0, SYN, 500)
    dup = data(0, 0)
    out, merged = run([syn, data(0, 10), data(10, 10), dup, dup, data(20, 10)])
    assert merged == 1
    assert [len(s.payload) for s in out] == [0, 20, 0, 0, 10]


def test_a_batch_never_grows_past_one_ip_packet():
    out, _ = run([data(i * 1460, 1460) for i in range(100)])
    assert all(len(s.payload) <= MAX_MERGED for s in out)
    assert sum(len(s.payload) for s in out) == 146000


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3000),
                          st.sampled_from([ACK, ACK, ACK | PSH, ACK | FIN])), max_size=40))
def test_the_core_sees_the_same_bytes_at_the_same_sequence_numbers(pieces):
    stream = bytes(range(256)) * 100
    segments, seq = [], 0
    for gap, size, flags in pieces:
        seq += gap * 7 if gap > 3 else 0          # now and then a hole
        segments.append(TcpSegment(80, 4000, seq, 9, flags, 500, options=TS,
                                   payload=stream[seq % 1000:seq % 1000 + size]))
        seq += size
    out, merged = run(segments)
    assert len(out) == len(segments) - merged
    flat_in = [(s.seq + i, b) for s in segments for i, b in enumerate(s.payload)]
    flat_out = [(s.seq + i, b) for s in out for i, b in enumerate(s.payload)]
    assert flat_in == flat_out
    assert [s.flags & FIN for s in segments if s.flags & FIN] == [
        s.flags & FIN for s in out if s.flags & FIN]
