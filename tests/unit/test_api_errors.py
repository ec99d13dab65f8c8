"""What the core refuses in LISTEN and OPEN reaches a person as one line.

The core raises its own errors (``tcpstack.core.errors``): ``TcpAddressInUse``
and ``TcpNoFreePort`` (``OSError``) and ``TcpInvalidArgument``
(``ValueError``). ``tcpstack.api`` -- and through it every CLI command --
turns the first two into ``tcpstack.errors.UserError`` (exit 1) and checks
ports itself, so that ``TcpInvalidArgument`` never reaches a user: a bad port
is a ``UsageError`` (exit 2) before the core is asked.

No device: the ``Stack`` runs over one end of an in-memory link pair with
nothing at the other end (connections stay in SYN-SENT).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tcpstack.api import Stack
from tcpstack.core.config import StackConfig
from tcpstack.core.errors import TcpAddressInUse, TcpInvalidArgument, TcpNoFreePort
from tcpstack.errors import UsageError, UserError
from tcpstack.link.memory import memory_pair

ADDR, PEER = "10.9.0.2", "10.9.0.1"


async def _handler(reader: asyncio.StreamReader, writer: Any) -> None:
    writer.close()


def _run(body: Callable[[Stack], Awaitable[None]], **stack_args: Any) -> None:
    async def main() -> None:
        link, _ = memory_pair()
        async with Stack(link=link, addr=ADDR, linger=0.05, **stack_args) as stack:
            await body(stack)

    asyncio.run(asyncio.wait_for(main(), 10))


@contextlib.contextmanager
def _one_line_error(kind: type[UserError], *parts: str) -> Iterator[None]:
    """A ``kind`` (UserError: exit 1, UsageError: exit 2) of one line naming ``parts``."""
    with pytest.raises(kind) as caught:
        yield
    message = str(caught.value)
    assert caught.value.exit_code == (2 if kind is UsageError else 1), message
    assert message and "\n" not in message
    for part in parts:
        assert part in message, (part, message)


async def _opening(stack: Stack, port: int, **kwargs: Any) -> asyncio.Task[Any]:
    """An open_connection left in SYN-SENT (no peer answers): its 4-tuple is in use."""
    task = asyncio.create_task(stack.open_connection(PEER, port, **kwargs))
    await asyncio.sleep(0)                      # core.connect() has run
    assert not task.done() or task.exception() is None
    return task


async def _drop(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- with the real core ----------------------------------------------------------

def test_listening_twice_on_a_port_is_a_user_error() -> None:
    async def body(stack: Stack) -> None:
        await stack.start_server(_handler, 8000)
        with _one_line_error(UserError, "8000"):
            await stack.start_server(_handler, 8000)

    _run(body)


def test_a_four_tuple_in_use_is_a_user_error() -> None:
    async def body(stack: Stack) -> None:
        first = await _opening(stack, 80, local_port=5000)
        try:
            with _one_line_error(UserError, "5000", f"{PEER}:80"):
                await stack.open_connection(PEER, 80, local_port=5000)
        finally:
            await _drop(first)

    _run(body)


def test_no_free_ephemeral_port_is_a_user_error() -> None:
    async def body(stack: Stack) -> None:
        first = await _opening(stack, 81)
        try:
            with _one_line_error(UserError, f"{PEER}:81"):
                await stack.open_connection(PEER, 81)
        finally:
            await _drop(first)

    _run(body, config=StackConfig(ephemeral_ports=(40000, 40000)))


# -- the API's side of the contract, whatever the core's wording -------------------

class _RefusingCore:
    """The real core, except that listen()/connect() raise ``error`` (and are counted)."""

    def __init__(self, core: Any, error: BaseException) -> None:
        self._core = core
        self._error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def listen(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise self._error

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise self._error


@pytest.mark.parametrize("error, call, parts", [
    (TcpAddressInUse("port 8000 is already listening"), "listen", ("8000", "already")),
    (TcpAddressInUse(f"{ADDR}:5000 -> {PEER}:80 is already in use"), "connect",
     ("5000", f"{PEER}:80", "already")),
    (TcpNoFreePort(f"no free local port for {PEER}:80"), "connect", (f"{PEER}:80", "no free")),
], ids=["listen-in-use", "connect-in-use", "connect-no-free-port"])
def test_core_os_errors_become_one_line_user_errors(error: OSError, call: str,
                                                   parts: tuple[str, ...]) -> None:
    async def body(stack: Stack) -> None:
        stack.core = refusing = _RefusingCore(stack.core, error)
        with _one_line_error(UserError, *parts):
            if call == "listen":
                await stack.start_server(_handler, 8000)
            else:
                await stack.open_connection(PEER, 80, local_port=5000)
        assert refusing.calls == 1

    _run(body)


@pytest.mark.parametrize("port", [0, -1, 65536, 100000])
def test_a_bad_port_is_a_usage_error_before_the_core_is_asked(port: int) -> None:
    async def body(stack: Stack) -> None:
        stack.core = refusing = _RefusingCore(stack.core, TcpInvalidArgument("unreachable"))
        with _one_line_error(UsageError, str(port)):
            await stack.start_server(_handler, port)
        with _one_line_error(UsageError, str(port)):
            await stack.open_connection(PEER, port)
        assert refusing.calls == 0

    _run(body)


@pytest.mark.parametrize("local_port", [0, 65536])
def test_a_bad_local_port_is_a_usage_error_before_the_core_is_asked(local_port: int) -> None:
    async def body(stack: Stack) -> None:
        stack.core = refusing = _RefusingCore(stack.core, TcpInvalidArgument("unreachable"))
        with _one_line_error(UsageError, str(local_port)):
            await stack.open_connection(PEER, 80, local_port=local_port)
        assert refusing.calls == 0

    _run(body)
