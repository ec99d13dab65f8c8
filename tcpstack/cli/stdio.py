"""stdin and stdout of ``tcpstack listen`` / ``tcpstack connect``, at the stack's speed.

What each kind of file gets:

- **a pipe, FIFO or socket** is switched to non-blocking mode and read or
  written when the event loop reports it ready (``add_reader`` /
  ``add_writer``), up to ``IO_SIZE`` at a time, without a thread; a pipe is
  grown to ``PIPE_SIZE`` (``F_SETPIPE_SZ``, as far as the system allows) so
  that the program at its other end runs ahead of us. The blocking flag is
  put back when we are done with the file.
- **a terminal** is read on a daemon thread, one ``read`` per request (a line
  at a time in the terminal's canonical mode), and written with blocking
  writes: its blocking flag is shared with the shell and never touched. So
  is a pipe or socket that another standard descriptor shares (``2>&1 |``).
- **a regular file or a device** that the event loop cannot wait for
  (``/dev/null``, ``/dev/zero``) is read and written directly: it never
  waits for another program.

Nothing read is ever dropped: a read that is cancelled while it waits has
not taken anything yet, and the thread's one pending chunk waits for the
next ``read()``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import stat
import threading

IO_SIZE = 1 << 20           # the most one read of stdin / write of stdout moves
PIPE_SIZE = 1 << 20          # what we ask a pipe to hold (Linux default 64 KiB)
TERMINAL_CHUNK = 64 * 1024   # one read of a terminal (a line in canonical mode)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

PIPE, TERMINAL, DIRECT = "pipe", "terminal", "direct"


def file_kind(fd: int, others: tuple[int, ...] = (0, 1, 2)) -> str:
    """``pipe`` (FIFO or socket: waited for by the event loop), ``terminal``
    (a thread, blocking mode left alone) or ``direct`` (everything else).

    A pipe or socket that one of ``others`` (the standard descriptors) refers
    to as well -- ``2>&1 |``, or one socket for all three -- counts as a
    terminal: the blocking flag belongs to the open file, which they share,
    and stderr in non-blocking mode would fail on a full pipe."""
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


class _NonBlocking:
    """``fd`` in non-blocking mode until ``restore()``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._was_blocking = os.get_blocking(fd)
        if self._was_blocking:
            os.set_blocking(fd, False)

    def restore(self) -> None:
        if self._was_blocking:
            self._was_blocking = False
            try:
                os.set_blocking(self.fd, True)
            except OSError:
                pass


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, writing: bool) -> None:
    """Until the event loop reports ``fd`` readable (or writable)."""
    future = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    add, remove = ((loop.add_writer, loop.remove_writer) if writing
                   else (loop.add_reader, loop.remove_reader))
    add(fd, wake)
    try:
        await future
    finally:
        remove(fd)


class StdinSource:
    """stdin in chunks of up to ``IO_SIZE`` bytes; ``read()`` returns b"" at its end."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self.kind = file_kind(fd)
        self.at_eof = False
        self._nonblocking: _NonBlocking | None = None
        self._thread_reader: _ThreadReader | None = None
        if self.kind == PIPE:
            _grow_pipe(fd)
            self._nonblocking = _NonBlocking(fd)
        elif self.kind == TERMINAL:
            self._thread_reader = _ThreadReader(fd, self._loop)

    async def read(self) -> bytes:
        if self.at_eof:
            return b""
        if self._thread_reader is not None:
            data = await self._thread_reader.read()
        elif self._nonblocking is not None:
            data = await self._read_pipe()
        else:
            data = _read_or_eof(self._fd)
        if not data:
            self.at_eof = True
            self.close()
        return data

    async def _read_pipe(self) -> bytes:
        while True:
            try:
                return os.read(self._fd, IO_SIZE)
            except BlockingIOError:
                await _ready(self._loop, self._fd, writing=False)
            except OSError:
                return b""

    def close(self) -> None:
        """Put the file's blocking flag back (idempotent)."""
        if self._nonblocking is not None:
            self._nonblocking.restore()


def _read_or_eof(fd: int) -> bytes:
    try:
        return os.read(fd, IO_SIZE)
    except OSError:
        return b""


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
            self._loop.call_soon_threadsafe(_resolve, future, data)
            if not data:
                return

    async def read(self) -> bytes:
        if self._pending is None:
            self._pending = self._loop.create_future()
            self._requests.put(self._pending)
        data = await asyncio.shield(self._pending)
        self._pending = None
        return data


def _resolve(future: asyncio.Future[bytes], data: bytes) -> None:
    if not future.done():
        future.set_result(data)


class StdoutSink:
    """stdout, written in whole: ``await write(data)`` returns once every byte
    is in the file (a full pipe is waited for without blocking the loop)."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self.kind = file_kind(fd)
        self._nonblocking: _NonBlocking | None = None
        if self.kind == PIPE:
            _grow_pipe(fd)
            self._nonblocking = _NonBlocking(fd)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """All of ``data``; ``BrokenPipeError`` when the reader has gone."""
        view = memoryview(data)
        fd = self._fd
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                await _ready(self._loop, fd, writing=True)
                continue
            view = view[n:]

    def close(self) -> None:
        """Put the file's blocking flag back (idempotent)."""
        if self._nonblocking is not None:
            self._nonblocking.restore()
