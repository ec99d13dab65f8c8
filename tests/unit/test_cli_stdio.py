"""tcpstack.cli.stdio: stdin and stdout of listen/connect, on real pipes and files."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from tcpstack.cli.stdio import (
    DIRECT,
    IO_SIZE,
    PIPE,
    TERMINAL,
    WRITE_BEHIND,
    StdinSource,
    StdoutSink,
    file_kind,
)


class Ticker:
    """Counts the event loop's iterations while it runs: proof that the loop
    was not blocked meanwhile."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    def stop(self) -> None:
        self._task.cancel()


def test_kinds(tmp_path) -> None:
    read_end, write_end = os.pipe()
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with open(path, "rb") as f, open(os.devnull, "rb") as null:
        assert file_kind(read_end) == PIPE
        assert file_kind(f.fileno()) == DIRECT
        assert file_kind(null.fileno()) == DIRECT
    os.close(read_end)
    os.close(write_end)


def test_a_pipe_shared_with_another_standard_descriptor_keeps_blocking_mode() -> None:
    """``2>&1 |``: stdout and stderr are one open pipe; making it non-blocking
    would make stderr fail when the pipe is full."""
    read_end, write_end = os.pipe()
    shared = os.dup(write_end)
    other_read, other_write = os.pipe()
    try:
        assert file_kind(write_end, others=(shared,)) == TERMINAL
        assert file_kind(write_end, others=(other_write,)) == PIPE   # another pipe
        # Why: the flag is the open file's; non-blocking through one descriptor,
        # a write through the other fails once the pipe is full.
        os.set_blocking(write_end, False)
        with pytest.raises(BlockingIOError):
            while True:
                os.write(shared, b"x" * 65536)
    finally:
        for fd in (read_end, write_end, shared, other_read, other_write):
            os.close(fd)


def test_pipe_stdin_read_ahead_in_order_to_eof_blocking_flag_untouched() -> None:
    data = os.urandom(3 * IO_SIZE + 12345)
    read_end, write_end = os.pipe()

    def produce() -> None:
        view = memoryview(data)
        while view:                     # small writes, with pauses: the reader waits
            view = view[os.write(write_end, view[:70_000]):]
            time.sleep(0.001)
        os.close(write_end)

    async def body() -> bytes:
        source = StdinSource(read_end)
        assert source.kind == PIPE
        assert os.get_blocking(read_end)       # the open file is shared: never changed
        threading.Thread(target=produce).start()
        chunks = []
        while chunk := await source.read():
            assert len(chunk) <= IO_SIZE
            chunks.append(chunk)
        assert source.at_eof and await source.read() == b""
        return b"".join(chunks)

    try:
        assert asyncio.run(body()) == data
        assert os.get_blocking(read_end)
    finally:
        os.close(read_end)


def test_a_cancelled_pipe_read_loses_nothing() -> None:
    read_end, write_end = os.pipe()

    async def body() -> bytes:
        source = StdinSource(read_end)
        waiting = asyncio.ensure_future(source.read())
        await asyncio.sleep(0.01)
        waiting.cancel()
        os.write(write_end, b"after the cancel")
        os.close(write_end)
        first = await source.read()
        return first + await source.read()

    try:
        assert asyncio.run(body()) == b"after the cancel"
    finally:
        os.close(read_end)


def test_regular_file_stdin(tmp_path) -> None:
    data = os.urandom(2 * IO_SIZE + 7)
    path = tmp_path / "in.bin"
    path.write_bytes(data)

    async def body(fd: int) -> bytes:
        source = StdinSource(fd)
        chunks = []
        while chunk := await source.read():
            chunks.append(chunk)
        return b"".join(chunks)

    with open(path, "rb") as f:
        assert asyncio.run(body(f.fileno())) == data


def test_stdout_to_a_slow_pipe_writes_everything_blocking_flag_untouched() -> None:
    data = os.urandom(3 * IO_SIZE + 999)
    read_end, write_end = os.pipe()
    received = bytearray()

    def consume() -> None:
        while chunk := os.read(read_end, 50_000):
            received.extend(chunk)
            time.sleep(0.0005)

    async def body() -> None:
        sink = StdoutSink(write_end)
        assert sink.kind == PIPE and os.get_blocking(write_end)
        ticker = Ticker()               # the loop keeps running while the pipe is full
        await sink.write(data[:IO_SIZE])
        await sink.write(memoryview(data)[IO_SIZE:])
        ticker.stop()
        sink.close()
        assert ticker.ticks > 0

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        asyncio.run(body())
        assert os.get_blocking(write_end)
    finally:
        os.close(write_end)
        consumer.join(timeout=30)
        os.close(read_end)
    assert bytes(received) == data


def test_stdout_to_a_file(tmp_path) -> None:
    path = tmp_path / "out.bin"
    data = os.urandom(IO_SIZE + 1)

    async def body(fd: int) -> None:
        sink = StdoutSink(fd)
        assert sink.kind == DIRECT
        await sink.write(data)
        sink.close()

    with open(path, "wb") as f:
        asyncio.run(body(f.fileno()))
    assert path.read_bytes() == data


def test_stdin_pipe_someone_made_non_blocking_is_still_read_whole() -> None:
    """Another program sharing the pipe may have set O_NONBLOCK: the read-ahead
    thread waits for data instead of taking EAGAIN for the end."""
    data = os.urandom(IO_SIZE + 5)
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)

    def produce() -> None:
        time.sleep(0.05)                # the reader finds the pipe empty first
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view[:100_000]):]
        os.close(write_end)

    async def body() -> bytes:
        source = StdinSource(read_end)
        threading.Thread(target=produce).start()
        chunks = []
        while chunk := await source.read():
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        assert asyncio.run(body()) == data
        assert not os.get_blocking(read_end)   # as it was
    finally:
        os.close(read_end)


def test_stdout_buffers_written_behind_in_order_from_a_bounded_pool() -> None:
    """``buffer()`` / ``submit()``: each buffer is written on the writer thread
    while the next fills; no more than WRITE_BEHIND buffers ever exist, the
    loop runs while the pipe is full, and ``flush()`` returns once all of it
    is in the pipe."""
    chunks = [os.urandom(IO_SIZE - i) for i in range(3 * WRITE_BEHIND)]
    read_end, write_end = os.pipe()
    received = bytearray()

    def consume() -> None:
        while chunk := os.read(read_end, 200_000):
            received.extend(chunk)
            time.sleep(0.0005)

    async def body() -> None:
        sink = StdoutSink(write_end)
        seen: set[int] = set()
        ticker = Ticker()
        for chunk in chunks:
            buffer = await sink.buffer()
            assert len(buffer) == IO_SIZE
            seen.add(id(buffer))
            buffer[:len(chunk)] = chunk
            sink.submit(buffer, len(chunk))
        await sink.flush()
        ticker.stop()
        sink.close()
        assert len(seen) <= WRITE_BEHIND and ticker.ticks > 0

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        asyncio.run(body())
    finally:
        os.close(write_end)
        consumer.join(timeout=30)
        os.close(read_end)
    assert bytes(received) == b"".join(chunks)


def test_stdout_to_a_pipe_whose_reader_has_gone_raises_broken_pipe() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)

    async def body() -> None:
        sink = StdoutSink(write_end)
        buffer = await sink.buffer()
        sink.submit(buffer, 10)
        with pytest.raises(BrokenPipeError):
            await sink.flush()
        with pytest.raises(BrokenPipeError):
            await sink.write(b"more")
        sink.close()

    try:
        asyncio.run(body())
    finally:
        os.close(write_end)
