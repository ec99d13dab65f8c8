"""``TcpStreamReader`` against a fake connection, on a real asyncio loop.

The fake has the part of ``tcpstack.core.connection.Connection`` that the
streams use (``recv``, ``recv_into``, ``recv_available``, ``at_eof``,
``error``, ``state``, ``send``...), and the fake driver the part of
``StackDriver`` (``watch``, ``kick``, ``now``...); the reader and its
``TcpTransport`` are the real ones, built by ``make_streams``. Every read
method is compared with a real ``asyncio.StreamReader`` fed the same bytes.
"""

from __future__ import annotations

import array
import ast
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpstack.core.errors import TcpConnectionReset, TcpTimeout
from tcpstack.core.state import State
from tcpstack.runtime.server import make_streams
from tcpstack.runtime.streams import READ_PIECE, TcpStreamReader, TcpTransport

PACKAGE = Path(__file__).resolve().parents[2] / "tcpstack"


class FakeConnection:
    """What the streams use of a core ``Connection``; bytes arrive by ``deliver``."""

    def __init__(self) -> None:
        self.state = State.ESTABLISHED
        self.error: ConnectionError | None = None
        self.local = ("10.7.0.2", 40000)
        self.remote = ("10.7.0.1", 9000)
        self.rcv = bytearray()
        self.fin = False
        self.recv_sizes: list[int] = []     # what each recv/recv_into handed out
        self.sent = bytearray()

    @property
    def at_eof(self) -> bool:
        return self.fin and not self.rcv

    def recv_available(self) -> int:
        return len(self.rcv)

    def recv(self, max_bytes: int, now: float) -> bytes:
        if not self.rcv and self.error is not None:
            raise self.error
        data = bytes(self.rcv[:max_bytes])
        del self.rcv[:max_bytes]
        if data:
            self.recv_sizes.append(len(data))
        return data

    def send_space(self) -> int:
        return 1 << 20

    def send(self, data: memoryview, now: float) -> int:
        self.sent += data
        return len(data)

    def shutdown(self, now: float) -> None:
        self.state = State.FIN_WAIT_1

    def close(self, now: float) -> None:
        self.state = State.FIN_WAIT_1

    def abort(self, now: float) -> None:
        self.state = State.CLOSED

    def info(self) -> dict[str, Any]:
        return {"state": str(self.state)}


class FakeConnectionInto(FakeConnection):
    """A connection that also offers ``recv_into`` (the core's has it)."""

    def recv_into(self, buffer: memoryview, now: float) -> int:
        if not self.rcv and self.error is not None:
            raise self.error
        n = min(len(buffer), len(self.rcv))
        buffer[:n] = self.rcv[:n]
        del self.rcv[:n]
        if n:
            self.recv_sizes.append(n)
        return n


class FakeDriver:
    """What the streams use of ``StackDriver``."""

    busy_poll_time = 0.0                    # no busy polling: reads wait on the loop

    def __init__(self) -> None:
        self.watchers: dict[Any, Callable[[], None]] = {}
        self.kicks = 0

    def watch(self, obj: Any, callback: Callable[[], None]) -> None:
        self.watchers[obj] = callback

    def unwatch(self, obj: Any) -> None:
        self.watchers.pop(obj, None)

    def kick(self) -> None:
        self.kicks += 1

    def kick_if_needed(self) -> None:
        self.kick()                         # (the real one asks the core first)

    def service_now(self) -> None:
        pass

    def now(self) -> float:
        return 0.0

    def changed(self, obj: Any) -> None:
        """What the driver does when the core reports ``obj`` changed."""
        callback = self.watchers.get(obj)
        if callback is not None:
            callback()


class Peer:
    """One reader over a fake connection, and the far end that sends to it."""

    def __init__(self, limit: int = 64 * 1024, recv_into: bool = True) -> None:
        self.conn = FakeConnectionInto() if recv_into else FakeConnection()
        self.driver = FakeDriver()
        reader, self.writer = make_streams(self.conn, self.driver, limit)  # type: ignore[arg-type]
        assert isinstance(reader, TcpStreamReader)
        self.reader = reader

    @property
    def transport(self) -> TcpTransport:
        return self.writer.transport

    def send(self, data: bytes) -> None:
        self.conn.rcv += data
        self.driver.changed(self.conn)

    def send_fin(self) -> None:
        self.conn.fin = True
        self.driver.changed(self.conn)

    def fail(self, error: ConnectionError) -> None:
        self.conn.error = error
        self.conn.state = State.CLOSED
        self.driver.changed(self.conn)


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro_fn(), 10)
    return asyncio.run(bounded())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- the same as asyncio.StreamReader -------------------------------------------

SEPARATORS = [b"\n", b";", b"ab", b"\r\n", b"xyz"]

OPS = st.one_of(
    st.tuples(st.just("read"), st.integers(-1, READ_PIECE)),
    st.tuples(st.just("readline"), st.just(0)),
    st.tuples(st.just("readexactly"), st.integers(0, 300)),
    st.tuples(st.just("readuntil"), st.integers(0, len(SEPARATORS) - 1)),
    st.tuples(st.just("readinto"), st.integers(0, 300)),
    st.tuples(st.just("iterate"), st.just(0)),
)


async def apply(reader: Any, op: str, arg: int) -> tuple[Any, ...]:
    """One read on either reader, as comparable data (result or exception)."""
    try:
        if op == "read":
            result: Any = await reader.read(arg)
        elif op == "readline":
            result = await reader.readline()
        elif op == "readexactly":
            result = await reader.readexactly(arg)
        elif op == "readuntil":
            result = await reader.readuntil(SEPARATORS[arg])
        elif op == "iterate":
            result = await reader.__anext__()
        elif isinstance(reader, TcpStreamReader):
            buffer = bytearray(arg)
            n = await reader.readinto(buffer)
            result = bytes(buffer[:n])
        else:                               # asyncio's has no readinto: read(n) is the same
            result = await reader.read(arg)
    except asyncio.IncompleteReadError as exc:
        return ("incomplete", exc.partial, exc.expected, str(exc), reader.at_eof())
    except asyncio.LimitOverrunError as exc:
        return ("overrun", exc.consumed, exc.args, reader.at_eof())
    except (ValueError, StopAsyncIteration) as exc:
        return (type(exc).__name__, exc.args, reader.at_eof())
    return ("ok", result, reader.at_eof(), reader.exception())


async def replay_asyncio(chunks: list[bytes], limit: int,
                         ops: list[tuple[str, int]]) -> list[tuple[Any, ...]]:
    reader = asyncio.StreamReader(limit=limit)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return [await apply(reader, op, arg) for op, arg in ops]


async def replay_tcpstack(chunks: list[bytes], limit: int, ops: list[tuple[str, int]],
                          recv_into: bool) -> list[tuple[Any, ...]]:
    peer = Peer(limit, recv_into)
    for chunk in chunks:
        peer.send(chunk)
    peer.send_fin()
    return [await apply(peer.reader, op, arg) for op, arg in ops]


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=400)
                       | st.lists(st.sampled_from([b"a", b"b", b"\n", b";", b"\r", b"xyz",
                                                   b"hello", b"x" * 50]),
                                  max_size=40).map(b"".join),
                       max_size=8),
       slack=st.integers(0, 400),
       ops=st.lists(OPS, max_size=12),
       recv_into=st.booleans())
def test_every_read_method_returns_what_asyncio_s_reader_returns(
        chunks: list[bytes], slack: int, ops: list[tuple[str, int]], recv_into: bool) -> None:
    """Same bytes in, same results, exceptions and ``at_eof()`` out. The limit is
    at least half of all the bytes: then the reader's pulls (up to twice the
    limit) hold everything asyncio's buffer holds, and the results cannot
    depend on how the bytes arrived."""
    total = sum(map(len, chunks))
    limit = max(1, (total + 1) // 2) + slack
    ops = [*ops, ("read", -1), ("read", 10), ("readline", 0)]
    expected = asyncio.run(replay_asyncio(chunks, limit, ops))
    got = run(lambda: replay_tcpstack(chunks, limit, ops, recv_into))
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000).map(lambda b: b.replace(b"\x00", b"\n")),
       cuts=st.lists(st.integers(1, 700), max_size=10),
       ops=st.lists(OPS, max_size=30),
       recv_into=st.booleans())
def test_bytes_arriving_while_reads_wait_come_out_once_and_in_order(
        data: bytes, cuts: list[int], ops: list[tuple[str, int]], recv_into: bool) -> None:
    """The far end sends piece by piece while the reads wait: every byte comes
    out exactly once, in order, and each method keeps its promise."""
    pieces, rest = [], data
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)

    async def body() -> bytes:
        peer = Peer(limit=4096, recv_into=recv_into)

        async def far_end() -> None:
            for piece in pieces:
                await settle()
                peer.send(piece)
            await settle()
            peer.send_fin()

        sender = asyncio.ensure_future(far_end())
        out = bytearray()
        for op, arg in [*ops, ("read", -1)]:
            result = await apply(peer.reader, op, arg)
            kind, value = result[0], result[1]
            if kind == "incomplete":
                out += value
                assert peer.reader.at_eof()
                continue
            if kind in ("StopAsyncIteration",):
                assert peer.reader.at_eof()
                continue
            assert kind == "ok", result
            out += value
            if op == "readexactly":
                assert len(value) == arg
            elif op in ("readline", "iterate"):
                assert value.endswith(b"\n") or peer.reader.at_eof()
            elif op == "readuntil":
                assert value.endswith(SEPARATORS[arg])
            elif op in ("read", "readinto") and arg > 0:
                assert 0 < len(value) <= arg or peer.reader.at_eof()
        await sender
        return bytes(out)

    assert run(body) == data


def test_async_iteration_yields_asyncio_s_lines() -> None:
    data = b"one\ntwo\r\n\nthree"

    async def ours() -> list[bytes]:
        peer = Peer()
        peer.send(data)
        peer.send_fin()
        return [line async for line in peer.reader]

    async def theirs() -> list[bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return [line async for line in reader]

    assert run(ours) == asyncio.run(theirs()) == [b"one\n", b"two\r\n", b"\n", b"three"]


def test_eof_read_returns_empty_and_readexactly_raises_incomplete() -> None:
    async def body() -> None:
        peer = Peer()
        peer.send(b"abc")
        peer.send_fin()
        assert not peer.reader.at_eof()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await peer.reader.readexactly(5)
        assert info.value.partial == b"abc" and info.value.expected == 5
        assert peer.reader.at_eof()
        assert await peer.reader.read() == b""
        assert await peer.reader.read(10) == b""
        assert await peer.reader.readinto(bytearray(10)) == 0
        assert await peer.reader.readline() == b""
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await peer.reader.readuntil(b"x")
        assert info.value.partial == b"" and info.value.expected is None
        assert await peer.reader.readexactly(0) == b""

    run(body)


def test_at_eof_turns_true_with_the_last_byte_read() -> None:
    """As with asyncio's reader once the FIN is in: no extra empty read needed."""
    async def body() -> None:
        for method in ("read", "readinto"):
            peer = Peer()
            peer.send(b"last")
            peer.send_fin()
            if method == "read":
                assert await peer.reader.read(100) == b"last"
            else:
                assert await peer.reader.readinto(bytearray(100)) == 4
            assert peer.reader.at_eof()

    run(body)


def test_limit_overrun_leaves_the_data_and_readline_drops_the_long_line() -> None:
    async def check(reader: Any) -> list[Any]:
        seen: list[Any] = []
        with pytest.raises(asyncio.LimitOverrunError) as info:
            await reader.readuntil(b"\n")
        seen.append((info.value.consumed, info.value.args))
        seen.append(await reader.readexactly(3))            # the data stayed
        with pytest.raises(ValueError) as value_info:
            await reader.readline()
        seen.append(value_info.value.args)
        seen.append(await reader.readline())
        with pytest.raises(asyncio.LimitOverrunError) as info:
            await reader.readuntil(b"!")                    # found, but too far
        seen.append((info.value.consumed, info.value.args))
        seen.append(await reader.read())
        return seen

    data = b"0123456789abcdefghij\nok\n" + b"12345678901!"

    async def ours() -> list[Any]:
        peer = Peer(limit=10)
        peer.send(data)
        peer.send_fin()
        return await check(peer.reader)

    async def theirs() -> list[Any]:
        reader = asyncio.StreamReader(limit=10)
        reader.feed_data(data)
        reader.feed_eof()
        return await check(reader)

    expected = asyncio.run(theirs())
    assert expected[0][0] == 20 and expected[3] == b"ok\n"
    assert run(ours) == expected


def test_tuple_of_separators_ends_at_the_first_match_shortest_on_a_tie() -> None:
    async def body() -> list[bytes]:
        peer = Peer()
        peer.send(b"GET / HTTP/1.0\r\nHost: x\n\r\nrest;end")
        peer.send_fin()
        reader = peer.reader
        got = [await reader.readuntil((b"\r\n", b"\n")),
               await reader.readuntil((b"\n", b"\r\n")),
               await reader.readuntil((b"\r\n", b"\n")),
               await reader.readuntil((b"end", b";"))]
        with pytest.raises(ValueError, match="at least one element"):
            await reader.readuntil(())
        with pytest.raises(ValueError, match="at least one-byte"):
            await reader.readuntil((b"", b"x"))
        got.append(await reader.read())
        return got

    expected = [b"GET / HTTP/1.0\r\n", b"Host: x\n", b"\r\n", b"rest;", b"end"]
    assert run(body) == expected
    if sys.version_info >= (3, 13):
        async def theirs() -> list[bytes]:
            reader = asyncio.StreamReader()
            reader.feed_data(b"GET / HTTP/1.0\r\nHost: x\n\r\nrest;end")
            reader.feed_eof()
            return [await reader.readuntil((b"\r\n", b"\n")),
                    await reader.readuntil((b"\n", b"\r\n")),
                    await reader.readuntil((b"\r\n", b"\n")),
                    await reader.readuntil((b"end", b";")),
                    await reader.read()]
        assert asyncio.run(theirs()) == expected


def test_tuple_overrun_counts_the_shortest_separator() -> None:
    async def body() -> None:
        peer = Peer(limit=4)
        peer.send(b"abcdefgh\r\n")
        with pytest.raises(asyncio.LimitOverrunError) as info:
            await peer.reader.readuntil((b"\r\n", b"\n"))
        # Found, but beyond the limit; the shortest separator counts as the match.
        assert info.value.consumed == 9
        assert await peer.reader.readexactly(10) == b"abcdefgh\r\n"   # the data stayed

    run(body)


def test_bad_arguments_raise_like_asyncio() -> None:
    with pytest.raises(ValueError, match="Limit cannot be <= 0"):
        TcpStreamReader(limit=0)

    async def body() -> None:
        peer = Peer()
        with pytest.raises(ValueError, match="less than zero"):
            await peer.reader.readexactly(-1)
        with pytest.raises(ValueError, match="at least one-byte"):
            await peer.reader.readuntil(b"")
        assert await peer.reader.read(0) == b""
        assert await peer.reader.readinto(bytearray()) == 0

    run(body)


def test_a_second_waiting_read_is_refused_like_asyncio() -> None:
    async def body() -> None:
        peer = Peer()
        first = asyncio.ensure_future(peer.reader.read(10))
        await settle()
        for second in (peer.reader.read(10), peer.reader.readline(),
                       peer.reader.readexactly(2), peer.reader.readinto(bytearray(4))):
            with pytest.raises(RuntimeError, match="already waiting"):
                await second
        peer.send(b"data")
        assert await first == b"data"

    run(body)


def test_feed_data_and_feed_eof_work_without_a_connection() -> None:
    async def body() -> None:
        reader = TcpStreamReader(limit=5)
        waiting = asyncio.ensure_future(reader.readline())
        await settle()
        reader.feed_data(b"hel")
        await settle()
        assert not waiting.done()
        reader.feed_data(b"lo\nrest")
        assert await waiting == b"hello\n"
        assert await reader.read(2) == b"re"
        reader.feed_eof()
        assert await reader.read() == b"st"
        assert reader.at_eof()
        assert "eof" in repr(reader) and "limit=5" in repr(reader)

    run(body)


# -- straight from the connection, flow control ----------------------------------

def test_bytes_leave_the_connection_only_when_the_application_reads() -> None:
    async def body() -> None:
        peer = Peer()
        peer.send(b"x" * 300_000)
        await settle()
        assert peer.conn.recv_available() == 300_000
        kicks = peer.driver.kicks
        assert await peer.reader.read(1000) == b"x" * 1000
        assert peer.conn.recv_available() == 299_000
        assert peer.driver.kicks > kicks      # the window reopened: an update may be due

    run(body)


def test_read_takes_at_most_64k_straight_from_the_connection() -> None:
    async def body() -> None:
        peer = Peer()
        peer.send(bytes(200_000))
        assert len(await peer.reader.read(1 << 20)) == READ_PIECE
        assert peer.conn.recv_sizes == [READ_PIECE]      # one recv, nothing buffered
        assert peer.conn.recv_available() == 200_000 - READ_PIECE
        assert not peer.reader._buf

    run(body)


def test_readinto_uses_recv_into_for_as_much_as_the_buffer_takes() -> None:
    async def body() -> None:
        peer = Peer()
        payload = bytes(range(256)) * 1000
        peer.send(payload)
        buffer = bytearray(200_000)
        assert await peer.reader.readinto(buffer) == 200_000
        assert peer.conn.recv_sizes == [200_000]
        assert buffer == payload[:200_000]
        view = memoryview(bytearray(100_000))
        assert await peer.reader.readinto(view) == 56_000
        assert view[:56_000] == payload[200_000:]

    run(body)


def test_readinto_without_recv_into_fills_the_buffer_piece_by_piece() -> None:
    async def body() -> None:
        peer = Peer(recv_into=False)
        payload = bytes(range(256)) * 1000
        peer.send(payload)
        buffer = bytearray(200_000)
        assert await peer.reader.readinto(buffer) == 200_000
        assert all(size <= READ_PIECE for size in peer.conn.recv_sizes)
        assert buffer == payload[:200_000]

    run(body)


def test_readinto_takes_what_the_reader_buffered_first() -> None:
    async def body() -> None:
        peer = Peer()
        peer.send(b"line\nmore bytes")
        assert await peer.reader.readline() == b"line\n"
        buffer = bytearray(100)
        n = await peer.reader.readinto(buffer)
        assert buffer[:n] == b"more bytes"
        peer.send(b"+direct")
        n = await peer.reader.readinto(buffer)
        assert buffer[:n] == b"+direct"

    run(body)


def test_readinto_accepts_any_writable_buffer() -> None:
    async def body() -> None:
        peer = Peer()
        peer.send(bytes(range(8)))
        words = array.array("H", [0, 0])
        assert await peer.reader.readinto(words) == 4
        assert words.tobytes() == bytes(range(4))

    run(body)


@pytest.mark.parametrize(("limit", "left"), [(64 * 1024, 300_000 - 3 * READ_PIECE),
                                               (1000, 300_000 - READ_PIECE)])
def test_buffered_reads_pull_while_below_twice_the_limit(limit: int, left: int) -> None:
    """Checked between pieces of up to 64 KiB: 64 KiB pieces until above 2x the limit."""
    async def body() -> None:
        peer = Peer(limit=limit)
        peer.send(b"y" * 300_000)
        assert await peer.reader.readexactly(1) == b"y"
        assert peer.conn.recv_available() == left
        assert not peer.transport.is_reading()          # paused, like asyncio's
        while len(peer.reader._buf) > limit:
            await peer.reader.readexactly(1000)
        assert peer.transport.is_reading()              # resumed at the limit
        assert peer.conn.recv_available() == left       # but pulls only when waiting

    run(body)


def test_readexactly_of_exactly_what_arrived_is_the_connection_s_own_bytes() -> None:
    """A response of exactly the size asked for comes straight from the
    connection (the very object its recv returned), waiting or not; more
    than that goes through the reader's buffer as before."""
    async def body() -> None:
        peer = Peer(recv_into=False)
        handed: list[bytes] = []
        recv = peer.conn.recv

        def recording(max_bytes: int, now: float) -> bytes:
            handed.append(recv(max_bytes, now))
            return handed[-1]

        peer.conn.recv = recording                       # type: ignore[method-assign]
        waiting = asyncio.ensure_future(peer.reader.readexactly(3))
        await settle()
        peer.send(b"abc")
        got = await waiting
        assert got == b"abc" and got is handed[-1]
        peer.send(b"xyz")
        got = await peer.reader.readexactly(3)
        assert got == b"xyz" and got is handed[-1]
        peer.send(b"12345")
        got = await peer.reader.readexactly(3)
        assert got == b"123" and handed[-1] == b"12345"
        assert bytes(peer.reader._buf) == b"45"
        assert await peer.reader.readexactly(2) == b"45"

    run(body)


def test_readexactly_beyond_twice_the_limit_resumes_and_completes() -> None:
    async def body() -> None:
        peer = Peer(limit=100)
        peer.send(bytes(150_000))
        waiting = asyncio.ensure_future(peer.reader.readexactly(250_000))
        await settle()
        assert not waiting.done()
        peer.send(bytes(100_000))
        assert len(await waiting) == 250_000

    run(body)


def test_waiting_reads_wake_for_data_and_for_the_fin() -> None:
    async def body() -> None:
        for method in ("read", "readinto", "readline", "readexactly", "readuntil"):
            peer = Peer()
            buffer = bytearray(64)

            async def one(peer: Peer = peer, method: str = method,
                          buffer: bytearray = buffer) -> bytes:
                reader = peer.reader
                if method == "read":
                    return await reader.read(64)
                if method == "readinto":
                    return bytes(buffer[:await reader.readinto(buffer)])
                if method == "readline":
                    return await reader.readline()
                if method == "readexactly":
                    return await reader.readexactly(6)
                return await reader.readuntil(b"\n")

            waiting = asyncio.ensure_future(one())
            await settle()
            assert not waiting.done(), method
            peer.send(b"hello\n")
            assert await waiting == b"hello\n", method
            waiting = asyncio.ensure_future(peer.reader.read(10))
            await settle()
            assert not waiting.done()
            peer.send_fin()
            assert await waiting == b"", method
            assert await peer.reader.read() == b""
            assert peer.reader.at_eof()

    run(body)


def test_resume_reading_wakes_a_read_waiting_on_a_paused_transport() -> None:
    async def body() -> None:
        peer = Peer()
        peer.transport.pause_reading()
        waiting = asyncio.ensure_future(peer.reader.readline())
        await settle()
        peer.send(b"held back\n")
        await settle()
        assert not waiting.done() and peer.conn.recv_available() == 10
        peer.transport.resume_reading()
        assert await waiting == b"held back\n"

    run(body)


# -- errors -------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["read", "read_all", "readinto", "readline",
                                    "readexactly", "readuntil"])
def test_a_connection_error_reaches_waiting_and_later_reads(method: str) -> None:
    async def call(reader: TcpStreamReader) -> Any:
        if method == "read":
            return await reader.read(10)
        if method == "read_all":
            return await reader.read()
        if method == "readinto":
            return await reader.readinto(bytearray(10))
        if method == "readline":
            return await reader.readline()
        if method == "readexactly":
            return await reader.readexactly(10)
        return await reader.readuntil(b";")

    async def body() -> None:
        peer = Peer()
        waiting = asyncio.ensure_future(call(peer.reader))
        await settle()
        reset = TcpConnectionReset("connection reset by peer")
        peer.fail(reset)
        with pytest.raises(TcpConnectionReset):
            await waiting
        assert peer.reader.exception() is reset
        with pytest.raises(ConnectionResetError):
            await call(peer.reader)
        with pytest.raises(TcpConnectionReset):
            await peer.writer.drain()

    run(body)


def test_an_error_before_the_read_is_raised_at_once() -> None:
    async def body() -> None:
        peer = Peer()
        peer.fail(TcpTimeout("connection timed out"))
        for coro in (peer.reader.read(1), peer.reader.readinto(bytearray(1)),
                     peer.reader.readexactly(1), peer.reader.readline()):
            with pytest.raises(TimeoutError):
                await coro
        assert isinstance(peer.reader.exception(), ConnectionError)

    run(body)


def test_set_exception_behaves_as_on_asyncio_s_reader() -> None:
    async def check(reader: Any) -> list[Any]:
        seen = []
        waiting = asyncio.ensure_future(reader.readexactly(100))
        await settle()
        error = OSError("boom")
        reader.set_exception(error)
        try:
            await waiting
        except OSError as exc:
            seen.append(exc is error)
        seen.append(reader.exception() is error)
        for coro in (reader.read(), reader.read(1), reader.readline(),
                     reader.readexactly(1), reader.readuntil(b"x")):
            try:
                await coro
            except OSError as exc:
                seen.append(exc is error)
        return seen

    async def ours() -> list[Any]:
        peer = Peer()
        peer.send(b"x")
        return await check(peer.reader)

    async def theirs() -> list[Any]:
        reader = asyncio.StreamReader()
        reader.feed_data(b"x")
        return await check(reader)

    expected = asyncio.run(theirs())
    assert expected == [True] * 7
    assert run(ours) == expected


def test_a_cancelled_read_leaves_the_reader_usable() -> None:
    async def body() -> None:
        peer = Peer()
        waiting = asyncio.ensure_future(peer.reader.readline())
        await settle()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        peer.send(b"after\n")
        assert await peer.reader.readline() == b"after\n"

    run(body)


# -- no private asyncio attribute -------------------------------------------------------

def _asyncio_private_names() -> set[str]:
    """The private attribute and method names of asyncio's stream, future, task,
    transport and loop objects on this Python."""
    async def collect() -> set[str]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        task = asyncio.ensure_future(asyncio.sleep(0))
        await task
        objects: list[Any] = [reader, asyncio.StreamReaderProtocol(reader),
                              loop.create_future(), task, loop, asyncio.Event(),
                              asyncio.Queue(), asyncio.Lock(), asyncio.Transport(),
                              loop.call_later(1, print)]
        names: set[str] = set()
        for obj in objects:
            for cls in (*type(obj).__mro__, asyncio.StreamWriter):
                names.update(vars(cls))
            names.update(dir(obj))
        return {n for n in names if n.startswith("_") and not n.endswith("__")}
    return asyncio.run(collect())


def test_the_reader_is_its_own_class() -> None:
    assert TcpStreamReader.__mro__ == (TcpStreamReader, object)
    assert not issubclass(TcpStreamReader, asyncio.StreamReader)


def test_no_private_asyncio_attribute_is_used() -> None:
    """In every module that imports asyncio: no ``x._name`` on another object
    where ``_name`` is private to asyncio's classes (a tcpstack class's own
    ``self._...`` is its business), and a tcpstack subclass of an asyncio
    class does not touch that class's private names on ``self`` either."""
    private = _asyncio_private_names()
    assert {"_wakeup_waiter", "_wait_for_data", "_buffer", "_waiter"} <= private
    bad: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if "asyncio" not in source:
            continue
        tree = ast.parse(source)
        where = path.relative_to(PACKAGE.parent)
        for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
            for base in cls.bases:
                if isinstance(base, ast.Attribute) and ast.unparse(base.value) == "asyncio":
                    base_private = {n for klass in getattr(asyncio, base.attr).__mro__
                                    for n in vars(klass)
                                    if n.startswith("_") and not n.endswith("__")}
                    for node in ast.walk(cls):
                        if isinstance(node, ast.Attribute) and node.attr in base_private:
                            bad.append(f"{where}:{node.lineno}: {ast.unparse(node)} "
                                       f"(private to asyncio.{base.attr})")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                bad.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "private asyncio attributes used:\n" + "\n".join(bad)
