"""stdin and stdout of ``tcpstack listen`` / ``tcpstack connect``, at the stack's speed.

What each kind of file gets:

- **a pipe, FIFO or socket** is read ahead and written behind on a thread
  of its own, up to ``IO_SIZE`` at a time: the copy in or out of the pipe,
  and any wait for the program at its other end, happen beside the event
  loop, not in it (``READ_AHEAD`` chunks of stdin wait at most; stdout takes
  ``WRITE_BEHIND`` buffers, handed over without a copy). A pipe is grown to
  ``PIPE_SIZE`` (``F_SETPIPE_SZ``, as far as the system allows). The file's
  blocking flag is never changed: it belongs to the open file, which the
  shell and the program at the other end share with us.
- **a terminal** is read on a daemon thread, one ``read`` per request (a line
  at a time in the terminal's canonical mode), and written with blocking
  writes; so is a pipe or socket that another standard descriptor shares
  (``2>&1 |``): nothing is read ahead of what the program asks for.
- **a regular file or a device** that the event loop cannot wait for
  (``/dev/null``, ``/dev/zero``) is read and written directly: it never
  waits for another program.

Nothing read is ever dropped: a read that is cancelled while it waits has
not taken anything yet, and what the threads read waits for the next
``read()``. Nothing written is lost: ``flush()`` returns once every byte
handed over is in the file, and raises the error a write met
(``BrokenPipeError`` when the reader has gone).
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import queue
import select
import stat
import threading

IO_SIZE = 1 << 20           # the most one read of stdin / write of stdout moves
PIPE_SIZE = 1 << 20          # what we ask a pipe to hold (Linux default 64 KiB)
READ_AHEAD = 4               # chunks of stdin read before they are asked for
WRITE_BEHIND = 4             # stdout buffers in flight to the writer thread
TERMINAL_CHUNK = 64 * 1024   # one read of a terminal (a line in canonical mode)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

PIPE, TERMINAL, DIRECT = "pipe", "terminal", "direct"


def file_kind(fd: int, others: tuple[int, ...] = (0, 1, 2)) -> str:
    """``pipe`` (FIFO or socket: read ahead / written behind on a thread),
    ``terminal`` (read on request, written in order) or ``direct``
    (everything else).

    A pipe or socket that one of ``others`` (the standard descriptors) refers
    to as well -- ``2>&1 |``, or one socket for all three -- counts as a
    terminal: what goes to stdout must not overtake what goes to stderr
    after it, nor stdin be read ahead of a program that shares it."""
    try:
        st = os.fstat(fd)
    except OSError:
        return DIRECT
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return TERMINAL if _shared(fd, st, others) else PIPE
    if os.isatty(fd):
        return TERMINAL
    return DIRECT


def _shared(fd: int, st: os.stat_result, others: tuple[int, ...]) -> bool:
    for other in others:
        if other == fd:
            continue
        try:
            ost = os.fstat(other)
        except OSError:
            continue
        if (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def _grow_pipe(fd: int) -> None:
    """Ask for a ``PIPE_SIZE`` pipe buffer (fails quietly: a socket, an old
    kernel, or above ``/proc/sys/fs/pipe-max-size`` for an unprivileged user)."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None] | None) -> None:
    """From a thread: resolve ``future`` on its loop (a loop already closed
    has nobody left to wake)."""
    if future is None:
        return
    try:
        loop.call_soon_threadsafe(_resolve, future, None)
    except RuntimeError:
        pass


def _resolve(future: asyncio.Future, value: object) -> None:  # type: ignore[type-arg]
    if not future.done():
        future.set_result(value)


def _read_blocking(fd: int) -> bytes:
    """One read of up to ``IO_SIZE`` bytes, waiting for data even when the
    file is in non-blocking mode (another program may have set it); b"" at
    the end of the file or on an error."""
    while True:
        try:
            return os.read(fd, IO_SIZE)
        except BlockingIOError:
            select.select([fd], [], [])
        except OSError:
            return b""


def _write_blocking(fd: int, view: memoryview) -> None:
    """All of ``view``, waiting for room even in non-blocking mode."""
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


class StdinSource:
    """stdin in chunks of up to ``IO_SIZE`` bytes; ``read()`` returns b"" at its end."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self.kind = file_kind(fd)
        self.at_eof = False
        self._ahead: _ReadAhead | None = None
        self._thread_reader: _ThreadReader | None = None
        if self.kind == PIPE:
            _grow_pipe(fd)
            self._ahead = _ReadAhead(fd, self._loop)
        elif self.kind == TERMINAL:
            self._thread_reader = _ThreadReader(fd, self._loop)

    async def read(self) -> bytes:
        if self.at_eof:
            return b""
        if self._ahead is not None:
            data = await self._ahead.read()
        elif self._thread_reader is not None:
            data = await self._thread_reader.read()
        else:
            data = _read_or_eof(self._fd)
        if not data:
            self.at_eof = True
            self.close()
        return data

    def close(self) -> None:
        """Stop reading ahead (idempotent)."""
        if self._ahead is not None:
            self._ahead.close()


def _read_or_eof(fd: int) -> bytes:
    try:
        return os.read(fd, IO_SIZE)
    except OSError:
        return b""


class _ReadAhead:
    """A pipe read on a daemon thread ahead of ``read()``: at most
    ``READ_AHEAD`` chunks wait, in order, the end of the file last (b"")."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._loop = loop
        self._chunks: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        threading.Thread(target=self._worker, name="tcpstack-stdin", daemon=True).start()

    def _worker(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while len(self._chunks) >= READ_AHEAD and not self._closed:
                    cond.wait()
                if self._closed:
                    return
            data = _read_blocking(self._fd)
            with cond:
                self._chunks.append(data)
                waiter, self._waiter = self._waiter, None
            _wake(self._loop, waiter)
            if not data:
                return

    async def read(self) -> bytes:
        while True:
            with self._cond:
                if self._chunks:
                    data = self._chunks.popleft()
                    self._cond.notify()
                    return data
                waiter = self._waiter = self._loop.create_future()
            await waiter                # cancelled: nothing was taken

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()


class _ThreadReader:
    """A terminal read on a daemon thread, one chunk per request, so that a
    cancelled read loses nothing: its chunk waits for the next ``read()``."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._loop = loop
        self._requests: queue.SimpleQueue[asyncio.Future[bytes]] = queue.SimpleQueue()
        self._pending: asyncio.Future[bytes] | None = None
        threading.Thread(target=self._worker, name="tcpstack-stdin", daemon=True).start()

    def _worker(self) -> None:
        while True:
            future = self._requests.get()
            try:
                data = os.read(self._fd, TERMINAL_CHUNK)
            except OSError:
                data = b""
            try:
                self._loop.call_soon_threadsafe(_resolve, future, data)
            except RuntimeError:
                return
            if not data:
                return

    async def read(self) -> bytes:
        if self._pending is None:
            self._pending = self._loop.create_future()
            self._requests.put(self._pending)
        data = await asyncio.shield(self._pending)
        self._pending = None
        return data


class StdoutSink:
    """stdout. ``await write(data)`` returns once every byte is in the file.
    The fast way: fill ``await buffer()`` (``IO_SIZE`` bytes), hand it over
    with ``submit(buffer, n)``, and ``await flush()`` at the end; to a pipe
    the buffers are written behind, on a thread, while the next one fills."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self.kind = file_kind(fd)
        self._behind: _WriteBehind | None = None
        self._buffer: bytearray | None = None
        if self.kind == PIPE:
            _grow_pipe(fd)
            self._behind = _WriteBehind(fd, self._loop)

    async def buffer(self) -> bytearray:
        """An ``IO_SIZE`` buffer to fill (waits while every one is being written)."""
        if self._behind is not None:
            return await self._behind.buffer()
        if self._buffer is None:
            self._buffer = bytearray(IO_SIZE)
        return self._buffer

    def submit(self, buffer: bytearray, n: int) -> None:
        """``buffer[:n]`` to the file; the buffer is not ours until ``buffer()``
        hands it out again. A write error shows in ``buffer()`` or ``flush()``."""
        if self._behind is not None:
            self._behind.submit(buffer, n)
        else:
            _write_blocking(self._fd, memoryview(buffer)[:n])

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """All of ``data``; ``BrokenPipeError`` when the reader has gone."""
        if self._behind is not None:
            await self._behind.write(memoryview(data))
        else:
            _write_blocking(self._fd, memoryview(data))

    async def flush(self) -> None:
        """Until everything handed over is in the file; raises what a write met."""
        if self._behind is not None:
            await self._behind.write(memoryview(b""))

    def close(self) -> None:
        """Stop the writer thread once it has written what it has (idempotent)."""
        if self._behind is not None:
            self._behind.close()


class _WriteBehind:
    """A pipe written on a daemon thread: buffers (from a pool of
    ``WRITE_BEHIND``) and ``write()`` requests, in the order handed over."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._loop = loop
        # (what to write, the pool buffer it is in or None, who waits for it or None)
        self._queue: collections.deque[
            tuple[memoryview, bytearray | None, asyncio.Future[None] | None]
        ] = collections.deque()
        self._cond = threading.Condition()
        self._free: list[bytearray] = []
        self._made = 0
        self._waiter: asyncio.Future[None] | None = None   # buffer() waiting for one
        self._error: OSError | None = None
        self._closed = False
        threading.Thread(target=self._worker, name="tcpstack-stdout", daemon=True).start()

    def _worker(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue and not self._closed:
                    cond.wait()
                if not self._queue:
                    return
                view, _, _ = self._queue[0]
                failed = self._error is not None
            error = None
            if not failed:
                try:
                    _write_blocking(self._fd, view)
                except OSError as exc:
                    error = exc
            with cond:
                _, buffer, done = self._queue.popleft()
                if error is not None:
                    self._error = error
                if buffer is not None:
                    self._free.append(buffer)
                waiter, self._waiter = self._waiter, None
            _wake(self._loop, waiter)
            _wake(self._loop, done)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    async def buffer(self) -> bytearray:
        while True:
            with self._cond:
                self._raise_error()
                if self._free:
                    return self._free.pop()
                if self._made < WRITE_BEHIND:
                    self._made += 1
                    return bytearray(IO_SIZE)
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def submit(self, buffer: bytearray, n: int) -> None:
        with self._cond:
            self._queue.append((memoryview(buffer)[:n], buffer, None))
            self._cond.notify()

    async def write(self, view: memoryview) -> None:
        done: asyncio.Future[None] = self._loop.create_future()
        with self._cond:
            self._queue.append((view, None, done))
            self._cond.notify()
        await done
        with self._cond:
            self._raise_error()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
