"""asyncio streams over tcpstack connections.

Reading uses ``TcpStreamReader``, which has ``asyncio.StreamReader``'s
interface and semantics (it is its own class, built on public asyncio only)
and takes bytes from the connection's receive buffer only when the
application reads: ``read(n)`` (and ``readinto(buffer)``) with nothing left in
the reader's own buffer returns the connection's bytes directly, without
passing them through that buffer (one copy fewer each way); ``readline``,
``readexactly``, ``readuntil``... pull what the connection holds into the
reader's buffer as they need it, only while the reader is not paused (it
pauses itself above twice its ``limit``). Bytes left in the connection shrink
the advertised TCP window, so a slow reader slows the sender down through the
window -- nothing is dropped.

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

# What a waiting read expects from the transport (``TcpStreamReader._waiting``).
_DIRECT = 1     # read()/readinto(): wake it, it takes the bytes from the connection itself
_FILL = 2       # readline()/readexactly()/readuntil(): feed the reader's buffer


def socket_address(endpoint: tuple[str, int]) -> tuple[Any, ...]:
    """An address as asyncio gives it: ``(host, port)`` for IPv4,
    ``(host, port, flowinfo, scope_id)`` for IPv6 (``socket.getpeername``)."""
    host, port = endpoint
    return (host, port, 0, 0) if ":" in host else (host, port)


class TcpStreamReader:
    """``asyncio.StreamReader``'s interface, reading straight from a connection.

    Not a subclass of ``asyncio.StreamReader``: the same methods with the same
    semantics (``read``, ``readline``, ``readexactly``, ``readuntil``,
    ``at_eof``, ``exception``, ``set_exception``, ``feed_data``, ``feed_eof``,
    ``async for line in reader``), implemented on public asyncio only.

    ``read(n)`` with the reader's own buffer empty returns the connection's
    bytes as the connection hands them out (no copy through the buffer), at
    most ``READ_PIECE`` at a time; ``readinto(buffer)`` is
    ``socket.recv_into``'s shape and fills ``buffer`` with as much as the
    connection holds. ``readline``, ``readexactly`` and ``readuntil`` pull the
    connection's bytes into the reader's buffer when they wait for data, while
    that buffer holds no more than twice ``limit``.
    """

    __slots__ = ("__weakref__", "_buf", "_eof", "_exc", "_limit", "_paused",
                 "_recv_into", "_transport", "_waiter", "_waiting")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        # As asyncio's: the longest line (readline/readuntil), and half the
        # buffer size above which the reader stops pulling from the connection.
        if limit <= 0:
            raise ValueError("Limit cannot be <= 0")
        self._limit = limit
        self._buf = bytearray()
        self._eof = False               # feed_eof() called: nothing more comes
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._waiting = 0               # _DIRECT or _FILL while a read waits
        self._transport: TcpTransport | None = None
        self._recv_into: Any = None     # the connection's recv_into, if it has one
        self._paused = False            # pause_reading() called by us

    def __repr__(self) -> str:
        info = ["TcpStreamReader"]
        if self._buf:
            info.append(f"{len(self._buf)} bytes")
        if self._eof:
            info.append("eof")
        if self._limit != DEFAULT_LIMIT:
            info.append(f"limit={self._limit}")
        if self._waiter is not None:
            info.append(f"waiter={self._waiter!r}")
        if self._exc is not None:
            info.append(f"exception={self._exc!r}")
        if self._transport is not None:
            info.append(f"transport={self._transport!r}")
        if self._paused:
            info.append("paused")
        return "<{}>".format(" ".join(info))

    # -- what the transport (asyncio: the protocol) calls ----------------------

    def set_transport(self, transport: TcpTransport) -> None:
        assert self._transport is None, "Transport already set"
        self._transport = transport
        self._recv_into = getattr(transport.conn, "recv_into", None)

    def exception(self) -> BaseException | None:
        return self._exc

    def set_exception(self, exc: BaseException) -> None:
        self._exc = exc
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(exc)

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def feed_data(self, data: bytes | bytearray | memoryview) -> None:
        assert not self._eof, "feed_data after feed_eof"
        if not data:
            return
        buf = self._buf
        buf += data
        self._wake()
        transport = self._transport
        if transport is not None and not self._paused and len(buf) > 2 * self._limit:
            transport.pause_reading()
            self._paused = True

    def at_eof(self) -> bool:
        """True if the buffer is empty and ``feed_eof`` was called."""
        return self._eof and not self._buf

    def _wake(self) -> None:
        """Wake the read waiting for data or EOF."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self, func_name: str, kind: int) -> None:
        """Until data, EOF or an exception arrives (the exception is raised)."""
        if self._waiter is not None:
            raise RuntimeError(f"{func_name}() called while another coroutine is "
                               f"already waiting for incoming data")
        transport = self._transport
        if transport is not None and transport.driver.busy_poll_time and transport._busy_poll():
            if self._exc is not None:
                raise self._exc
            return
        # The transport's loop: asyncio.get_running_loop() costs a getpid(2) per call.
        waiter = self._waiter = (transport.create_future() if transport is not None
                                 else asyncio.get_running_loop().create_future())
        self._waiting = kind
        try:
            await waiter
        finally:
            self._waiter = None
            self._waiting = 0

    async def _wait_for_more(self, func_name: str) -> None:
        """Grow the buffer: pull from the connection, or wait until it has more.

        Waiting while paused would never end (``readexactly(n)`` with ``n``
        above twice the limit), so the reader resumes first, as asyncio's does.
        """
        if self._waiter is not None:
            raise RuntimeError(f"{func_name}() called while another coroutine is "
                               f"already waiting for incoming data")
        transport = self._transport
        if transport is not None:
            if self._paused:
                self._paused = False
                transport.resume_reading()
            if transport._pull():
                return
        await self._wait(func_name, _FILL)

    def _maybe_resume(self) -> None:
        if self._paused and len(self._buf) <= self._limit:
            self._paused = False
            transport = self._transport
            if transport is not None:
                transport.resume_reading()

    # -- reading --------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes as soon as any are there; b"" at EOF; all of it
        up to EOF when ``n`` is negative (asyncio's ``read``)."""
        if self._exc is not None:
            raise self._exc
        if n == 0:
            return b""
        if n < 0:
            blocks = []
            while block := await self.read(self._limit):
                blocks.append(block)
            return b"".join(blocks)
        buf = self._buf
        if not buf:
            transport = self._transport
            if transport is not None:
                # Straight from the connection, without the reader's buffer.
                while True:
                    data = transport._take(n)
                    if data or self._eof:
                        return data
                    await self._wait("read", _DIRECT)
                    if buf:
                        break               # someone fed the buffer meanwhile
                    if self._exc is not None:
                        raise self._exc
            elif not self._eof:
                await self._wait("read", _FILL)
        data = bytes(buf[:n])
        del buf[:n]
        self._maybe_resume()
        return data

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Up to ``len(buffer)`` bytes into ``buffer``; their count, 0 at EOF."""
        view = memoryview(buffer)
        if view.format != "B" or view.ndim != 1 or not view.c_contiguous:
            view = view.cast("B")
        if not view:
            return 0
        recv_into = self._recv_into
        if recv_into is None or self._buf:
            return await self._readinto_pieces(view)
        transport = self._transport
        assert transport is not None
        while True:
            if self._exc is not None:
                raise self._exc
            n = transport._take_into(view, recv_into)
            if n or self._eof:
                return n
            await self._wait("readinto", _DIRECT)
            if self._buf:
                return await self._readinto_pieces(view)

    async def _readinto_pieces(self, view: memoryview) -> int:
        """``readinto`` through ``read``: piece by piece while bytes are there."""
        data = await self.read(len(view))
        n = len(data)
        view[:n] = data
        transport = self._transport
        while n < len(view) and not self._buf and transport is not None and (
                transport.conn.recv_available()):
            data = transport._take(len(view) - n)
            if not data:
                break
            view[n:n + len(data)] = data
            n += len(data)
        return n

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ``asyncio.IncompleteReadError`` if EOF comes first."""
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if self._exc is not None:
            raise self._exc
        if n == 0:
            return b""
        buf = self._buf
        transport = self._transport
        if transport is not None and n <= READ_PIECE:
            # Nothing of the reader's own buffered and the connection holding
            # exactly n bytes (a response): what pulling them all into the
            # buffer and taking n out of it would return, without the trip
            # through the buffer. Waiting meanwhile like read() (woken, not fed).
            conn = transport.conn
            while not buf and not self._eof and transport.is_reading():
                available = conn.recv_available()
                if available == n:
                    data = transport._take(n)
                    if len(data) == n:
                        return data
                    buf += data             # (reading stopped: the usual path decides)
                    break
                if available:
                    break                   # less or more: through the buffer below
                await self._wait("readexactly", _DIRECT)
                if self._exc is not None:
                    raise self._exc
        while len(buf) < n:
            if self._eof:
                incomplete = bytes(buf)
                buf.clear()
                raise asyncio.IncompleteReadError(incomplete, n)
            await self._wait_for_more("readexactly")
        if len(buf) == n:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._maybe_resume()
        return data

    async def readline(self) -> bytes:
        """Up to and including b"\\n"; the partial line at EOF (b"" if none).
        A line longer than the limit raises ``ValueError`` and is dropped."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            return e.partial
        except asyncio.LimitOverrunError as e:
            buf = self._buf
            if buf.startswith(b"\n", e.consumed):
                del buf[:e.consumed + 1]
            else:
                buf.clear()
            self._maybe_resume()
            raise ValueError(e.args[0])  # noqa: B904 -- asyncio's, exactly

    async def readuntil(self, separator: bytes | tuple[bytes, ...] = b"\n") -> bytes:
        """Up to and including ``separator`` (or the one of a tuple of separators
        that ends first), as asyncio's: ``asyncio.IncompleteReadError`` at EOF
        (the buffer is emptied into it), ``asyncio.LimitOverrunError`` when the
        data before the separator would exceed the limit (the data stays)."""
        if isinstance(separator, tuple):
            separators: list[bytes] | None = sorted(separator, key=len)
            if not separators:
                raise ValueError("Separator should contain at least one element")
            min_len = len(separators[0])
            max_len = len(separators[-1])
        else:
            separators = None
            min_len = max_len = len(separator)
        if min_len == 0:
            raise ValueError("Separator should be at least one-byte string")
        if self._exc is not None:
            raise self._exc
        buf = self._buf
        limit = self._limit
        # ``offset``: how many bytes at the front hold no separator (not searched again).
        offset = 0
        while True:
            buflen = len(buf)
            if buflen - offset >= min_len:
                if separators is None:
                    start = buf.find(separator, offset)  # type: ignore[arg-type]
                    end = start + max_len
                else:
                    start = end = -1
                    for sep in separators:
                        at = buf.find(sep, offset)
                        if at != -1 and (end == -1 or at + len(sep) < end):
                            start, end = at, at + len(sep)
                if start != -1:
                    break
                offset = max(0, buflen + 1 - max_len)
                if offset > limit:
                    raise asyncio.LimitOverrunError(
                        "Separator is not found, and chunk exceed the limit", offset)
            # A complete separator may have arrived with the EOF: look first.
            if self._eof:
                chunk = bytes(buf)
                buf.clear()
                raise asyncio.IncompleteReadError(chunk, None)
            await self._wait_for_more("readuntil")
        if start > limit:
            raise asyncio.LimitOverrunError(
                "Separator is found, but chunk is longer than limit", start)
        chunk = bytes(buf[:end])
        del buf[:end]
        self._maybe_resume()
        return chunk

    def __aiter__(self) -> TcpStreamReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if line == b"":
            raise StopAsyncIteration
        return line


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
        # the core reported before anyone watched it: take them in now. (A
        # connection just opened, in SYN-SENT, holds nothing yet.)
        if conn.state is not State.SYN_SENT:
            self._on_change()

    def create_future(self) -> asyncio.Future[None]:
        """A future of the transport's loop (the reader's waits)."""
        return self._loop.create_future()

    # -- asyncio.BaseTransport / ReadTransport -----------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return socket_address(self.conn.remote)
        if name == "sockname":
            return socket_address(self.conn.local)
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
        self.driver.service_now()   # the FIN leaves now, as close(2) sends it at once

    def is_reading(self) -> bool:
        return not self._read_paused

    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False   # the reader pulls again when it waits for data,
            self._notify_reader()       # or now if it is waiting already

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
        error = conn.error
        if (error is None and conn.state is State.ESTABLISHED and not self._closing
                and not self._eof_requested and self._established.done()
                and not conn.at_eof):
            # The common case, once per arriving segment: data or an ACK on an
            # open connection -- no EOF, error, FIN or close to act on: what
            # the rest below would do comes down to these three.
            if self.reader._waiting:
                self._notify_reader()
            if self._pending:
                self._push()
            if self._drain_waiters:
                self._wake_drainers()
            return
        if not self._established.done() and (conn.state.synchronized or error):
            if error is not None and not conn.state.synchronized:
                self._established.set_exception(error)
                self._established.exception()  # mark retrieved: the opener re-raises it
            else:
                self._established.set_result(None)
        if self.reader._waiting:
            self._notify_reader()
        if conn.at_eof and not self._reading_stopped():
            self._eof_fed = True        # nothing left in the connection: EOF at once
            self.reader.feed_eof()
        # (The guards below only skip calls that would do nothing.)
        if self._pending or (not self._shutdown_done
                             and (self._eof_requested or self._closing)):
            self._push()
        if error is not None:
            self._report_error()
        if self._drain_waiters:
            self._wake_drainers()
        state = conn.state
        finished = self._finished
        if not finished.done() and (error is not None or self._aborted or (
                self._shutdown_done and state in _FINISHED) or state is State.CLOSED):
            finished.set_result(None)
        if state is State.CLOSED or error is not None or (self._closing and finished.done()):
            self.driver.unwatch(conn)   # nothing more for the application

    def _notify_reader(self) -> None:
        """Something changed: a reader waiting for data gets it (or EOF/the error)."""
        reader = self.reader
        waiting = reader._waiting
        if not waiting or self._reading_stopped():
            return
        conn = self.conn
        if conn.recv_available() or conn.at_eof:
            if waiting == _DIRECT:
                reader._wake()          # read()/readinto() take the bytes themselves
            else:
                self._pull()

    def _busy_poll(self) -> bool:
        """Spin on the link (the driver's ``busy_poll``) until something for
        the reader arrives: True if it did while spinning, False at once if it
        was there already (the caller waits as usual) or when the time is up."""
        conn = self.conn
        reader = self.reader

        def arrived() -> bool:
            return bool(self._eof_fed or reader.exception() is not None
                        or conn.recv_available() or conn.error is not None)

        return not arrived() and self.driver.busy_poll(arrived)

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
            self.driver.kick_if_needed()    # a window update may be due
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
        available = conn.recv_available()
        n = 0
        if available:
            n = recv_into(view, self.driver.now())
            self.driver.kick_if_needed()    # the window reopened: an update may be due
            if available > n:
                return n                # bytes are left: not at the end
        if conn.at_eof:
            self._eof_fed = True
            self.reader.feed_eof()
        return n

    def _take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` straight from the connection (b"" if none). EOF is
        fed to the reader once the connection is at its end -- with the last
        bytes already, so that ``at_eof()`` turns true as soon as they are read."""
        if self._reading_stopped():
            return b""
        conn = self.conn
        available = conn.recv_available()
        data = b""
        if available:
            size = min(max_bytes, READ_PIECE)
            data = conn.recv(size, self.driver.now())
            self.driver.kick_if_needed()    # the window reopened: an update may be due
            if available > size:
                return data             # bytes are left: not at the end
        if conn.at_eof:
            self._eof_fed = True
            self.reader.feed_eof()
        return data

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

    def wait_established(self) -> asyncio.Future[None]:
        """Awaitable: done once ESTABLISHED (or raising the connect's error). The
        future itself, not a coroutine around it: one frame fewer per connect."""
        return self._established

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

    def __init__(self, transport: TcpTransport, reader: TcpStreamReader) -> None:
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
