"""The core's ACK coalescing (StackContext.emit): within one batch of output, a
pure ACK that a later pure ACK of the same connection supersedes is left out;
duplicate ACKs, data, other flags and other connections are never touched, and
the trace shows exactly what goes out. Against the kernel, a 64 KB-GSO
transfer then needs far fewer ACKs than packets."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time

import pytest

import tcpstack
from tcpstack.core.config import StackConfig
from tcpstack.core.context import StackContext
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.wire.tcp import ACK, FIN, PSH, TcpSegment

from .conftest import KERNEL_ADDR, Kernel, run_async

LOCAL, PEER, OTHER = "10.9.0.2", "10.9.0.1", "10.9.0.3"


def _ack(ack: int, *, port: int = 5000, dst: str = PEER, flags: int = ACK,
         payload: bytes = b"", window: int = 100) -> tuple[str, str, TcpSegment]:
    return LOCAL, dst, TcpSegment(port, 80, 1000, ack & 0xFFFFFFFF, flags, window,
                                  payload=payload)


def _coalesce(output: list[tuple[str, str, TcpSegment]], *, coalesce: bool = True,
              events: list[TraceEvent] | None = None) -> list[tuple[str, str, TcpSegment]]:
    tracer = events.append if events is not None else None
    ctx = StackContext(LOCAL, StackConfig(coalesce_acks=coalesce), tracer)
    for src, dst, seg in output:
        ctx.emit((src, seg.src_port), (dst, seg.dst_port), seg, 0.0)
    return ctx.take_output()


def test_a_higher_cumulative_ack_supersedes_earlier_pure_acks() -> None:
    a, b, c = _ack(100), _ack(200, window=50), _ack(300, window=80)
    assert _coalesce([a, b, c]) == [c]


def test_the_trace_shows_only_what_goes_out() -> None:
    events: list[TraceEvent] = []
    a, b, data, c = _ack(100), _ack(200), _ack(200, flags=ACK | PSH, payload=b"x"), _ack(300)
    out = _coalesce([a, b, data, c], events=events)
    assert out == [data, c]
    assert [e.segment for e in events if e.kind is EventKind.SEGMENT_OUT] == [data[2], c[2]]


def test_coalescing_can_be_switched_off() -> None:
    acks = [_ack(100), _ack(200), _ack(300)]
    assert _coalesce(list(acks), coalesce=False) == acks


def test_duplicate_acks_are_all_kept() -> None:
    dups = [_ack(100), _ack(100), _ack(100)]
    assert _coalesce(list(dups)) == dups
    # ...also when a new ACK follows them: only the dup directly before it goes.
    after = _ack(400)
    assert _coalesce([*dups, after]) == [dups[0], dups[1], after]


def test_data_fin_and_other_connections_are_never_left_out() -> None:
    data = _ack(150, flags=ACK | PSH, payload=b"x")
    fin = _ack(160, flags=ACK | FIN)
    other_port = _ack(100, port=5001)
    other_host = _ack(100, dst=OTHER)
    last = _ack(500)
    output = [data, fin, other_port, other_host, last, _ack(600, port=5001)]
    assert _coalesce(list(output)) == [data, fin, other_host, last, output[-1]]


def test_sequence_wraparound_counts_as_higher() -> None:
    before, after = _ack(0xFFFFFFF0), _ack(0x10)
    assert _coalesce([before, after]) == [after]
    assert _coalesce([after, before]) == [after, before]   # older: both kept


@pytest.mark.root
def test_gso_transfer_from_the_kernel_needs_fewer_acks(netns_name: str,
                                                       kernel: Kernel) -> None:
    payload = os.urandom(16 * 1024 * 1024)

    def serve(sock: socket.socket) -> None:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)

    async def body() -> None:
        async with tcpstack.Stack(netns=netns_name) as stack:
            server = asyncio.ensure_future(asyncio.to_thread(serve, kernel.listen(9201)))
            reader, writer = await stack.open_connection(KERNEL_ADDR, 9201)
            # Block the loop a moment: the kernel queues a window's worth of
            # packets on the TUN, and the next wake-up takes them in as one batch.
            time.sleep(0.05)
            digest = hashlib.sha256()
            while data := await reader.read(1 << 20):
                digest.update(data)
            writer.close()
            await writer.wait_closed()
            await server
            assert digest.digest() == hashlib.sha256(payload).digest()
            counters = stack.counters
            assert counters["acks_coalesced"] > 0
            # The only discards allowed are answered zero-window probes: the kernel
            # probes a closed window with SEQ=SND.UNA-1, unacceptable by design.
            assert {k for k in counters if k.startswith("drop_")} <= {"drop_unacceptable_seq"}

    run_async(body(), timeout=60)


def test_duplicate_acks_with_sack_blocks_are_compressed() -> None:
    """Linux's SACK compression: of consecutive duplicate ACKs with SACK blocks only
    the newest goes out; without SACK every duplicate ACK counts and stays."""
    from tcpstack.wire.tcp import TcpOptions
    first = (LOCAL, PEER, TcpSegment(5000, 80, 1000, 100, ACK, 100,
                                     options=TcpOptions(sack_blocks=((200, 300),))))
    second = (LOCAL, PEER, TcpSegment(5000, 80, 1000, 100, ACK, 100,
                                      options=TcpOptions(sack_blocks=((400, 500), (200, 300)))))
    assert _coalesce([first, second]) == [second]
