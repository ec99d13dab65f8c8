"""``start_server``'s result: accepts connections from a core listener and runs
the handler for each, like ``asyncio.Server``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tcpstack.runtime.streams import (
    DEFAULT_LIMIT,
    TcpStreamReader,
    TcpStreamWriter,
    TcpTransport,
    socket_address,
)
from tcpstack.wire.addr import endpoint_text

if TYPE_CHECKING:
    from tcpstack.core.connection import Connection
    from tcpstack.core.stack import Listener
    from tcpstack.runtime.driver import StackDriver

Handler = Callable[[TcpStreamReader, TcpStreamWriter], Awaitable[None] | None]


def make_streams(conn: Connection, driver: StackDriver,
                 limit: int = DEFAULT_LIMIT) -> tuple[TcpStreamReader, TcpStreamWriter]:
    reader = TcpStreamReader(limit=limit)
    transport = TcpTransport(conn, driver, reader)
    return reader, TcpStreamWriter(transport, reader)


class ListenerAddress:
    """Stands in for ``server.sockets[i]``: only ``getsockname()``."""

    def __init__(self, addr: str, port: int) -> None:
        self._name = socket_address((addr, port))

    def getsockname(self) -> tuple[Any, ...]:
        """``(host, port)``, or for IPv6 ``(host, port, flowinfo, scope_id)``."""
        return self._name

    def __repr__(self) -> str:
        return f"<tcpstack listener {endpoint_text(self._name[0], self._name[1])}>"


class Server:
    """Serves one port. ``async with server:`` closes it on exit."""

    def __init__(self, listener: Listener, driver: StackDriver, handler: Handler,
                 addr: str | tuple[str, ...], port: int, limit: int = DEFAULT_LIMIT) -> None:
        self.listener = listener
        self.driver = driver
        self.handler = handler
        self.port = port
        self.limit = limit
        # One per family served, as asyncio's server on "::"/None has.
        addrs = (addr,) if isinstance(addr, str) else addr
        self.sockets = tuple(ListenerAddress(one, port) for one in addrs)
        self.accepted = 0
        self._loop = asyncio.get_running_loop()
        self._serving = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = self._loop.create_future()
        driver.watch(listener, self._on_change)
        self._on_change()        # connections may already be waiting

    def _on_change(self) -> None:
        if not self._serving:
            return
        while (conn := self.listener.accept()) is not None:
            self.accepted += 1
            reader, writer = make_streams(conn, self.driver, self.limit)
            task = self._loop.create_task(self._run(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, reader: TcpStreamReader, writer: TcpStreamWriter) -> None:
        try:
            result = self.handler(reader, writer)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.abort()       # the peer went away: nothing to report
        except asyncio.CancelledError:
            writer.abort()
            raise
        except Exception as exc:
            writer.abort()
            self._loop.call_exception_handler({
                "message": "Unhandled exception in tcpstack server handler",
                "exception": exc,
            })

    @property
    def active_handlers(self) -> int:
        return len(self._tasks)

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        """Stop accepting (the listener closes); running handlers go on."""
        if not self._serving:
            return
        self._serving = False
        self.listener.close()
        self.driver.unwatch(self.listener)
        self.driver.kick()
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await self._closed

    async def wait_handlers(self) -> None:
        """Until every handler started so far has returned."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel_handlers(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def serve_forever(self) -> None:
        try:
            await self._closed
        finally:
            self.close()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()
