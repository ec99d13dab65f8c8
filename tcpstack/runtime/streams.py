"""asyncio streams over tcpstack connections.

Reading uses ``TcpStreamReader``, an ``asyncio.StreamReader`` that takes
bytes from the connection's receive buffer only when the application reads:
``read(n)`` (and ``readinto(buffer)``) with nothing left in the reader's own
buffer returns the connection's bytes directly, without passing them through
that buffer (one copy fewer each way); ``readline``, ``readexactly``,
``readuntil``... pull what the connection holds into the reader's buffer as
they need it, only while the reader is not paused (it pauses itself above
twice its ``limit``). Bytes left in the connection shrink the advertised TCP
window, so a slow reader slows the sender down through the window --
nothing is dropped.

Writing goes through ``TcpTransport``, which holds what the connection's send
buffer cannot take yet (asyncio's transport write buffer), and
``TcpStreamWriter``, asyncio's ``StreamWriter`` shape on top of it: ``drain()``
waits while that buffer is above its high-water mark, ``close()`` sends FIN
only after every written byte has been handed to the connection.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any

from tcpstack.core.state import State

if TYPE_CHECKING:
    from tcpstack.core.connection import Connection
    from tcpstack.runtime.driver import StackDriver

DEFAULT_LIMIT = 64 * 1024          # asyncio's StreamReader limit
HIGH_WATER = 64 * 1024             # asyncio's default transport write limits
LOW_WATER = 16 * 1024
# The most one read takes from the connection at a time. Larger pieces are
# slower, not faster: a bytes object above the C allocator's mmap threshold
# (glibc: 128 KiB) is fresh memory every time -- page faults on the copy, an
# munmap on release -- which cost more than the extra calls (measured on 1 GB
# kernel->stack: 64 KiB pieces 1.08 GB/s, whole 1 MiB reads 0.59 GB/s).
READ_PIECE = 64 * 1024

# Our FIN has been acknowledged (or the connection is gone): nothing written is pending.
_FINISHED = frozenset({State.FIN_WAIT_2, State.TIME_WAIT, State.CLOSED})


class TcpStreamReader(asyncio.StreamReader):
    """``asyncio.StreamReader`` that reads straight from its connection.

    ``read(n)`` with the reader's own buffer empty returns the connection's
    bytes as the connection hands them out (no copy through the buffer), at
    most ``READ_PIECE`` at a time; ``readinto(buffer)`` is
    ``socket.recv_into``'s shape and fills ``buffer`` with as much as the
    connection holds. The other methods
    are asyncio's, fed from the connection when they wait for data.
    """

    _transport: TcpTransport

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__(limit=limit)
        self._direct = False            # a read()/readinto() waits: wake it, do not feed

    async def _wait_for_data(self, func_name: str) -> None:
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        if self._transport._pull():
            return
        await super()._wait_for_data(func_name)

    async def _wait_direct(self, func_name: str) -> None:
        self._direct = True
        try:
            await super()._wait_for_data(func_name)
        finally:
            self._direct = False

    async def read(self, n: int = -1) -> bytes:
        if n > 0 and not self._buffer and self._transport is not None:
            while True:
                if self._exception is not None:
                    raise self._exception
                data = self._transport._take(n)
                if data or self._eof:
                    return data
                await self._wait_direct("read")
                if self._buffer:
                    break
        return await super().read(n)

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Up to ``len(buffer)`` bytes into ``buffer``; their count, 0 at EOF."""
        view = memoryview(buffer).cast("B")
        if not view:
            return 0
        recv_into = getattr(self._transport.conn, "recv_into", None) if (
            self._transport is not None) else None
        if recv_into is None or self._buffer:
            return await self._readinto_pieces(view)
        while True:
            if self._exception is not None:
                raise self._exception
            n = self._transport._take_into(view, recv_into)
            if n or self._eof:
                return n
            await self._wait_direct("readinto")
            if self._buffer:
                return await self._readinto_pieces(view)

    async def _readinto_pieces(self, view: memoryview) -> int:
        """``readinto`` through ``read``: piece by piece while bytes are there."""
        data = await self.read(len(view))
        n = len(data)
        view[:n] = data
        transport = self._transport
        while n < len(view) and not self._buffer and transport is not None and (
                transport.conn.recv_available()):
            data = transport._take(len(view) - n)
            if not data:
                break
            view[n:n + len(data)] = data
            n += len(data)
        return n


class TcpTransport(asyncio.Transport):
    """The glue between one ``Connection`` and its reader/writer."""

    def __init__(self, conn: Connection, driver: StackDriver,
                 reader: TcpStreamReader) -> None:
        super().__init__()
        self.conn = conn
        self.driver = driver
        self.reader = reader
        self._loop = asyncio.get_running_loop()
        self._pending: collections.deque[memoryview] = collections.deque()
        self._pending_size = 0
        self._high = HIGH_WATER
        self._low = LOW_WATER
        self._read_paused = False
        self._eof_fed = False
        self._error_reported = False
        self._eof_requested = False     # write_eof(): FIN once pending data is out
        self._closing = False           # close(): FIN once pending data is out
        self._shutdown_done = False
        self._aborted = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._established = self._loop.create_future()
        self._finished = self._loop.create_future()
        driver.watch(conn, self._on_change)
        reader.set_transport(self)
        # An accepted connection may already hold data, a FIN or an error that
        # the core reported before anyone watched it: take them in now.
        self._on_change()

    # -- asyncio.BaseTransport / ReadTransport -----------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.conn.remote
        if name == "sockname":
            return self.conn.local
        if name == "tcpstack":
            return self.conn.info()
        if name == "connection":
            return self.conn
        return default

    def is_closing(self) -> bool:
        return self._closing or self._aborted

    def close(self) -> None:
        """Graceful: deliver everything written, then FIN; stop reading."""
        if self._closing:
            return
        self._closing = True
        self._push()
        self.driver.kick()

    def is_reading(self) -> bool:
        return not self._read_paused

    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        self._read_paused = False       # the reader pulls again when it waits for data

    # -- asyncio.WriteTransport ---------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._append(data):
            self._send()

    def writelines(self, list_of_data: Any) -> None:
        appended = False
        for data in list_of_data:
            appended = self._append(data) or appended
        if appended:
            self._send()

    def _append(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue ``data`` behind what is pending; False if it is dropped."""
        if self._eof_requested:
            raise RuntimeError("cannot call write() after write_eof()")
        if not data or self._closing or self._aborted or self.conn.error is not None:
            return False    # like asyncio: writes after close/loss are dropped
        view = memoryview(bytes(data)) if not isinstance(data, bytes) else memoryview(data)
        self._pending.append(view)
        self._pending_size += len(view)
        return True

    def _send(self) -> None:
        """Hand what is pending to the connection and write what it sends now
        (RFC 9293 §3.10.2 SEND), without waiting for the next loop iteration."""
        self._push()
        self.driver.service_now()

    def write_eof(self) -> None:
        if self._eof_requested or self._closing:
            return
        self._eof_requested = True
        self._push()
        self.driver.kick()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """Send RST and drop everything (RFC 9293 §3.10.5 ABORT)."""
        if self._aborted:
            return
        self._aborted = True
        self._closing = True
        self._pending.clear()
        self._pending_size = 0
        if self.conn.state is not State.CLOSED:
            self.conn.abort(self.driver.now())
        self.driver.kick()
        self._on_change()

    def get_write_buffer_size(self) -> int:
        return self._pending_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._wake_drainers()

    # -- what the driver calls -----------------------------------------------

    def _on_change(self) -> None:
        conn = self.conn
        if not self._established.done() and (conn.state.synchronized or conn.error):
            if conn.error is not None and not conn.state.synchronized:
                self._established.set_exception(conn.error)
                self._established.exception()  # mark retrieved: the opener re-raises it
            else:
                self._established.set_result(None)
        self._notify_reader()
        if conn.at_eof and not self._reading_stopped():
            self._eof_fed = True        # nothing left in the connection: EOF at once
            self.reader.feed_eof()
        self._push()
        self._report_error()
        self._wake_drainers()
        if not self._finished.done() and (conn.error is not None or self._aborted or (
                self._shutdown_done and conn.state in _FINISHED) or conn.state is State.CLOSED):
            self._finished.set_result(None)
        if conn.state is State.CLOSED or conn.error is not None or (
                self._closing and self._finished.done()):
            self.driver.unwatch(conn)   # nothing more for the application

    def _notify_reader(self) -> None:
        """Something changed: a reader waiting for data gets it (or EOF/the error)."""
        reader = self.reader
        if reader._waiter is None or self._reading_stopped():
            return
        conn = self.conn
        if conn.recv_available() or conn.at_eof:
            if reader._direct:
                reader._wakeup_waiter()     # read()/readinto() take the bytes themselves
            else:
                self._pull()

    def _reading_stopped(self) -> bool:
        return self._eof_fed or self._error_reported or (self._closing and self._shutdown_done)

    def _pull(self) -> bool:
        """Move received bytes into the reader's buffer while it is not paused;
        feed EOF once the connection holds no more. True if anything was fed."""
        if self._reading_stopped():
            return False
        conn = self.conn
        reader = self.reader
        fed = False
        while not self._read_paused and conn.recv_available():
            data = conn.recv(READ_PIECE, self.driver.now())
            if not data:
                break
            reader.feed_data(data)
            fed = True
        if fed:
            self.driver.kick()          # a window update may be due
        if conn.at_eof:
            self._eof_fed = True
            reader.feed_eof()
            fed = True
        return fed

    def _take_into(self, view: memoryview, recv_into: Any) -> int:
        """Like ``_take`` with a connection that offers ``recv_into(buffer, now)``."""
        if self._reading_stopped():
            return 0
        conn = self.conn
        if conn.recv_available():
            n = recv_into(view, self.driver.now())
            self.driver.kick()
            return n
        if conn.at_eof:
            self._eof_fed = True
            self.reader.feed_eof()
        return 0

    def _take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` straight from the connection (b"" if none; EOF fed
        to the reader when the connection is at its end)."""
        if self._reading_stopped():
            return b""
        conn = self.conn
        if conn.recv_available():
            data = conn.recv(min(max_bytes, READ_PIECE), self.driver.now())
            self.driver.kick()          # the window reopened: an update may be due
            return data
        if conn.at_eof:
            self._eof_fed = True
            self.reader.feed_eof()
        return b""

    def _push(self) -> None:
        """Hand pending writes to the connection's send buffer; FIN when asked and empty."""
        conn = self.conn
        if self._aborted or conn.error is not None:
            return
        if self._pending and conn.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            now = self.driver.now()
            pending = self._pending
            while pending and conn.send_space() > 0:
                head = pending[0]
                taken = conn.send(head, now)
                if taken <= 0:
                    break
                self._pending_size -= taken
                if taken >= len(head):
                    pending.popleft()
                else:
                    pending[0] = head[taken:]
        if (not self._pending and not self._shutdown_done
                and (self._eof_requested or self._closing)
                and conn.state not in (State.SYN_SENT, State.SYN_RECEIVED)):
            self._shutdown_done = True
            now = self.driver.now()
            if self._closing:
                conn.close(now)
            else:
                conn.shutdown(now)

    def _report_error(self) -> None:
        error = self.conn.error
        if error is None or self._error_reported:
            return
        self._error_reported = True
        if self._aborted:
            return
        if not self._eof_fed:
            self.reader.set_exception(error)
        self._pending.clear()
        self._pending_size = 0

    def _wake_drainers(self) -> None:
        if not self._drain_waiters:
            return
        if (self._pending_size <= self._low or self.conn.error is not None
                or self._aborted):
            waiters, self._drain_waiters = self._drain_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- what the writer awaits -----------------------------------------------

    async def wait_established(self) -> None:
        await self._established

    async def drain(self) -> None:
        error = self.conn.error
        if error is not None and not self._aborted:
            raise error
        if self._pending_size > self._high:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
            error = self.conn.error
            if error is not None and not self._aborted:
                raise error
        elif self.is_closing():
            await asyncio.sleep(0)

    async def wait_finished(self) -> None:
        await self._finished
        error = self.conn.error
        if error is not None and not self._aborted and not self._shutdown_done:
            raise error

    @property
    def finished(self) -> bool:
        return self._finished.done()


class TcpStreamWriter:
    """``asyncio.StreamWriter``'s interface for a tcpstack connection."""

    def __init__(self, transport: TcpTransport, reader: asyncio.StreamReader) -> None:
        self._transport = transport
        self._reader = reader

    def __repr__(self) -> str:
        conn = self._transport.conn
        return f"<TcpStreamWriter {conn.local} -> {conn.remote} {conn.state}>"

    @property
    def transport(self) -> TcpTransport:
        return self._transport

    @property
    def connection(self) -> Connection:
        return self._transport.conn

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def writelines(self, data: Any) -> None:
        self._transport.writelines(data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def abort(self) -> None:
        self._transport.abort()

    async def wait_closed(self) -> None:
        """Until our FIN is acknowledged (every byte delivered) or the connection died."""
        await self._transport.wait_finished()

    async def drain(self) -> None:
        exc = self._reader.exception()
        if exc is not None and not self._transport._aborted:
            raise exc
        await self._transport.drain()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)
