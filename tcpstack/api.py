"""tcpstack's Python API, in asyncio's shapes.

::

    async with tcpstack.Stack(netns="tcpstack") as stack:
        reader, writer = await tcpstack.open_connection("10.7.0.1", 8000)
        writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
        await writer.drain()
        print(await reader.read())

``Stack`` owns a TUN device in a network namespace (created if missing and
removed again if it created it) and runs the sans-IO core on the running
asyncio loop. ``open_connection``/``start_server`` return a
``TcpStreamReader`` (``asyncio.StreamReader``'s interface) and a
``TcpStreamWriter`` (``asyncio.StreamWriter``'s); without ``stack=`` they use
the innermost running ``Stack``.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Callable
from typing import Any

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.congestion import ALGORITHMS
from tcpstack.core.errors import (
    TcpAddressInUse,
    TcpInvalidArgument,
    TcpNoFreePort,
    TcpTooManyConnections,
)
from tcpstack.core.events import TraceEvent
from tcpstack.core.state import State
from tcpstack.errors import UsageError, UserError
from tcpstack.link import netns as ns
from tcpstack.link.tun import TSO_MAX_PAYLOAD
from tcpstack.runtime.driver import StackDriver
from tcpstack.runtime.network import (
    DEFAULT_ADDRS,
    DEFAULT_NETNS,
    DEFAULT_TUN,
    Addresses,
    NetworkSetup,
)
from tcpstack.runtime.server import Handler, Server, make_streams
from tcpstack.runtime.streams import DEFAULT_LIMIT, TcpStreamReader, TcpStreamWriter

_current: contextvars.ContextVar[Stack | None] = contextvars.ContextVar("tcpstack_stack",
                                                                       default=None)

# States in which a connection is done with (waiting for the peer's FIN in
# FIN-WAIT-2 is not: the exit lingers for it, so TIME-WAIT can be seen).
_QUIET = frozenset({State.CLOSED, State.TIME_WAIT, State.LISTEN})


class Stack:
    """A running userspace TCP stack, IPv4 and IPv6.

    Network: ``netns`` (created if missing unless ``create_netns=False``),
    ``tun`` device in it, the kernel's ``tun_addr`` on it and the stack's own
    ``addr`` -- each one address or one per family; by default both families
    (10.7.0.2 and fd00:7::2 for the stack, 10.7.0.1/24 and fd00:7::1/64 for
    the kernel; ``NetworkSetup`` says how given and default ones combine).
    Or pass ``link=`` (any ``tcpstack.link.base.Link``) to run over
    something else, e.g. one end of an in-memory pair.

    Observability: ``tracer`` gets every ``TraceEvent``; ``pcap`` is a file
    name or an object with ``write(packet, ts)``; ``fault`` a
    ``FaultSpec`` (or its text) applied to packets in both directions.

    Offloads: ``offload=True`` (default) opens the TUN with virtio-net
    headers, checksum offload and TSO when the kernel accepts them: the core
    then sends super-segments of whole MSS multiples up to 64 KB and takes in
    the kernel's 64 KB GSO packets. ``offload=False`` uses plain packets.
    Fault injection keeps them: the faults meet every wire-sized piece of a
    super-segment (``runtime.wirefaults``), a corrupted piece leaves as a
    complete packet with a real checksum. Only with a ``pcap`` as well are
    the offloads off, so the capture shows each wire segment the faults met.
    ``offload_note`` says why offloads are off when they were asked for.

    TCP: ``msl`` (TIME-WAIT lasts 2*MSL), ``min_rto``, ``isn_secret``
    (random by default), or a whole ``config=StackConfig(...)``; ``options``
    are the default ``ConnectionOptions``. On exit, connections get up to
    ``linger`` seconds to deliver what was written and finish their close;
    the rest are reset.

    Latency: ``busy_poll`` (seconds, 0 = off, the default) lets a read that
    would wait spin on the TUN for up to that long first, as Linux's
    ``SO_BUSY_POLL`` does: a quick response is taken in without the event
    loop going to sleep, at the price of a busy core and of other tasks and
    timers held back while it spins.
    """

    def __init__(self, *, netns: str = DEFAULT_NETNS, tun: str = DEFAULT_TUN,
                 addr: Addresses = None, tun_addr: Addresses = None,
                 mtu: int = 1500, create_netns: bool = True, link: Any = None,
                 tracer: Callable[[TraceEvent], None] | None = None, pcap: Any = None,
                 fault: Any = None, msl: float | None = None, min_rto: float | None = None,
                 isn_secret: bytes | None = None, config: StackConfig | None = None,
                 options: ConnectionOptions | None = None, linger: float = 2.0,
                 offload: bool = True, busy_poll: float = 0.0) -> None:
        self.offload_note: str | None = None
        if offload and fault is not None and pcap is not None and not _null_fault(fault):
            # The capture shows each wire segment the faults met, as without offloads.
            offload = False
            self.offload_note = ("offloads off: a capture of fault injection shows "
                                 "wire-sized segments with end-to-end checksums")
        self.network = None if link is not None else NetworkSetup(
            netns=netns, tun=tun, addr=addr, tun_addr=tun_addr, mtu=mtu,
            create_netns=create_netns, offload=offload)
        if self.network is not None:
            self.network.validate()
            addrs = tuple(self.network.addresses().values())
        else:
            given = DEFAULT_ADDRS if addr is None else (addr,) if isinstance(addr, str) else addr
            addrs = tuple(ns.parse_ip(a, "stack address") for a in given)
            if len({":" in a for a in addrs}) != len(addrs):
                raise UsageError(f"one stack address per family, not {', '.join(addrs)}")
        self.addrs: tuple[str, ...] = addrs     # IPv4 first when there are both
        self.addr = addrs[0]
        self._given_link = link
        self.tracer = tracer
        self._pcap_arg = pcap
        self._fault = fault
        self.options = options or ConnectionOptions()
        self.linger = linger
        if busy_poll < 0:
            raise UsageError(f"busy_poll must be >= 0, not {busy_poll}")
        self.busy_poll = busy_poll
        base = config or StackConfig()
        changes: dict[str, Any] = {"mtu": mtu if link is None else getattr(link, "mtu", mtu)}
        if msl is not None:
            changes["msl"] = msl
        if min_rto is not None:
            changes["min_rto"] = min_rto
        if config is None or config.isn_secret == StackConfig().isn_secret:
            changes["isn_secret"] = isn_secret or os.urandom(16)
        elif isn_secret is not None:
            changes["isn_secret"] = isn_secret
        try:
            self.config = _replace(base, changes)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.core: Any = None
        self.link: Any = None
        self.driver: StackDriver | None = None
        self._pcap: Any = None
        self._owns_pcap = False
        self._servers: list[Server] = []
        self._token: contextvars.Token[Stack | None] | None = None
        self._closed = False
        self._hurry = False

    # -- lifecycle -----------------------------------------------------------

    @staticmethod
    def current() -> Stack:
        stack = _current.get()
        if stack is None:
            raise RuntimeError("no running tcpstack.Stack: use `async with tcpstack.Stack() "
                               "as stack:` or pass stack=")
        return stack

    async def __aenter__(self) -> Stack:
        await self.start()
        self._token = _current.set(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:       # exited in another context: leave it be
                pass
            self._token = None
        await self.close()

    async def start(self) -> None:
        from tcpstack.core.stack import StackCore

        loop = asyncio.get_running_loop()
        try:
            if self.network is not None:
                link = await asyncio.to_thread(self.network.open)
            else:
                link = self._given_link
            self.link = link
            if self.offload_note is None:
                self.offload_note = getattr(link, "offload_note", None)
            if not self.config.tso_max and (getattr(link, "tso", False)
                                            or self.network is not None):
                # Super-segments from the core: the TUN cuts them (TSO) or,
                # without offloads, the driver does (GSO, as Linux for a device
                # without TSO). Faults hit the wire-sized pieces either way
                # (runtime/wirefaults.py with offloads), and the driver's GRO
                # merges what survived.
                self.config = _replace(self.config, {"tso_max": TSO_MAX_PAYLOAD})
            if self._fault is not None:
                link = self._wrap_fault(link, loop)
            self._pcap = self._open_pcap()
            self.core = StackCore(local_addr=self.addrs, config=self.config, tracer=self.tracer)
            self.driver = StackDriver(self.core, link, self.addrs, pcap=self._pcap,
                                      tracer=self.tracer, clock=loop.time,
                                      coalesce=self._fault is None or self.network is not None,
                                      busy_poll=self.busy_poll)
            self.driver.start()
        except BaseException:
            await self._release()
            raise

    def _wrap_fault(self, link: Any, loop: asyncio.AbstractEventLoop) -> Any:
        from tcpstack.link.fault import FaultSpec, FaultyLink

        spec = self._fault if isinstance(self._fault, FaultSpec) else FaultSpec.parse(self._fault)
        return FaultyLink.both_ways(link, spec, loop.time)

    def _open_pcap(self) -> Any:
        if self._pcap_arg is None:
            return None
        if hasattr(self._pcap_arg, "write"):
            return self._pcap_arg
        from tcpstack.link.pcap import PcapWriter

        try:
            writer = PcapWriter(os.fspath(self._pcap_arg), linktype=101)
        except OSError as exc:
            raise UserError(f"cannot write pcap file {self._pcap_arg}: "
                            f"{exc.strerror or exc}") from None
        self._owns_pcap = True
        return writer

    def hurry(self) -> None:
        """Cut a running ``close()`` short: stop waiting for connections to finish."""
        self._hurry = True

    async def close(self) -> None:
        """Close servers, let connections finish (up to ``linger`` s), reset the
        rest, then release the TUN/namespace/pcap."""
        if self._closed:
            return
        self._closed = True
        driver = self.driver
        if driver is not None and driver.running:
            for server in self._servers:
                server.close()
            try:
                await self._finish_connections()
            finally:
                driver.stop()
                await self._release()
            return
        await self._release()

    async def _finish_connections(self) -> None:
        driver = self.driver
        assert driver is not None
        now = driver.now()
        for conn in self.connections():
            if conn.state in (State.ESTABLISHED, State.CLOSE_WAIT, State.SYN_RECEIVED):
                conn.close(now)           # like a process exiting: FIN after the data
            elif conn.state is State.SYN_SENT:
                conn.abort(now)
        driver.kick()
        deadline = driver.now() + self.linger
        while not self._hurry and driver.now() < deadline and any(
                c.state not in _QUIET for c in self.connections()):
            await asyncio.sleep(0.01)
        now = driver.now()
        for conn in self.connections():
            if conn.state not in _QUIET:
                conn.abort(now)          # RST: the peer must not wait for us forever
        driver.kick()
        await asyncio.sleep(0)

    async def _release(self) -> None:
        if self.driver is not None:
            self.driver.stop()
        if self._pcap is not None and self._owns_pcap:
            self._pcap.close()
        self._pcap = None
        if self.network is not None:
            await asyncio.to_thread(self.network.close)

    # -- connections ---------------------------------------------------------

    def _options(self, options: ConnectionOptions | None, **changes: Any) -> ConnectionOptions:
        base = options or self.options
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return base
        if changes.get("cc", "cubic") not in ALGORITHMS:
            raise UsageError(f"unknown congestion control {changes['cc']!r}; "
                             f"choose one of: {', '.join(ALGORITHMS)}")
        try:
            return _replace(base, changes)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def _require_running(self) -> StackDriver:
        if self.driver is None or not self.driver.running:
            raise RuntimeError("this tcpstack.Stack is not running (use `async with`)")
        return self.driver

    async def open_connection(self, host: str, port: int, *, local_port: int | None = None,
                              options: ConnectionOptions | None = None,
                              nodelay: bool | None = None,
                              keepalive: tuple[float, float, int] | None = None,
                              mss: int | None = None, send_buffer: int | None = None,
                              recv_buffer: int | None = None, cc: str | None = None,
                              min_ssthresh: int | None = None,
                              limit: int = DEFAULT_LIMIT,
                              ) -> tuple[TcpStreamReader, TcpStreamWriter]:
        """Active open; returns once ESTABLISHED. Raises ConnectionRefusedError,
        TimeoutError (a ConnectionError too) as the kernel's would."""
        driver = self._require_running()
        remote = ns.parse_ip(host, "host address")
        if not 0 < int(port) < 65536:
            raise UsageError(f"bad port {port} (1..65535)")
        if local_port is not None and not 0 < int(local_port) < 65536:
            raise UsageError(f"bad local port {local_port} (1..65535)")
        opts = self._options(options, nodelay=nodelay, keepalive=keepalive, mss=mss,
                             send_buffer=send_buffer, recv_buffer=recv_buffer, cc=cc,
                             min_ssthresh=min_ssthresh)
        try:
            conn = self.core.connect(remote, int(port), driver.now(),
                                     local_port=None if local_port is None else int(local_port),
                                     options=opts)
        except (TcpAddressInUse, TcpNoFreePort, TcpTooManyConnections,
                TcpInvalidArgument) as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"cannot connect to {remote}:{port}: {exc}") from None
        reader, writer = make_streams(conn, driver, limit)
        driver.service_now()        # the SYN leaves now, as connect(2) sends it at once
        try:
            await writer.transport.wait_established()
        except asyncio.CancelledError:
            writer.abort()
            raise
        return reader, writer

    async def start_server(self, handler: Handler, port: int, host: str | None = None, *,
                           backlog: int = 128, options: ConnectionOptions | None = None,
                           nodelay: bool | None = None,
                           keepalive: tuple[float, float, int] | None = None,
                           mss: int | None = None, send_buffer: int | None = None,
                           recv_buffer: int | None = None, cc: str | None = None,
                           min_ssthresh: int | None = None,
                           limit: int = DEFAULT_LIMIT,
                           ) -> Server:
        """Passive open on ``port``; ``handler(reader, writer)`` runs per connection.

        ``host`` None, ``""`` or ``"::"``: both families (a socket on ``::``
        without IPV6_V6ONLY); ``"0.0.0.0"`` or the stack's IPv4 address: IPv4
        only; the stack's IPv6 address: IPv6 only."""
        driver = self._require_running()
        family, addrs = self._listen_family(host)
        if not 0 < int(port) < 65536:
            raise UsageError(f"bad port {port} (1..65535)")
        opts = self._options(options, nodelay=nodelay, keepalive=keepalive, mss=mss,
                             send_buffer=send_buffer, recv_buffer=recv_buffer, cc=cc,
                             min_ssthresh=min_ssthresh)
        try:
            listener = self.core.listen(int(port), backlog=backlog, options=opts, family=family)
        except TcpAddressInUse as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"cannot listen on port {port}: {exc}") from None
        server = Server(listener, driver, handler, addrs, int(port), limit)
        self._servers.append(server)
        return server

    def _listen_family(self, host: str | None) -> tuple[int | None, tuple[str, ...]]:
        """``start_server``'s ``host`` as a listener family and the addresses served."""
        if host in (None, "", "::"):
            return None, self.addrs
        wanted = 4 if host == "0.0.0.0" else 0
        if not wanted:
            try:
                canonical = ns.parse_ip(host, "listen address")
            except UsageError:
                canonical = ""
            if canonical in self.addrs:
                wanted = 6 if ":" in canonical else 4
        served = tuple(a for a in self.addrs if (6 if ":" in a else 4) == wanted)
        if not served:
            raise UsageError(f"cannot listen on {host}: this stack's addresses are "
                             f"{', '.join(self.addrs)} (or use :: for all)")
        return wanted, served

    # -- introspection -------------------------------------------------------

    def connections(self) -> list[Any]:
        """The core's connections (every state but LISTEN), TIME-WAIT included."""
        if self.core is None:
            return []
        return list(self.core.connections())

    def connections_info(self) -> list[dict[str, Any]]:
        """``ss -ti``: one ``conn.info()`` dict per connection."""
        return [conn.info() for conn in self.connections()]

    def listeners_info(self) -> list[dict[str, Any]]:
        """``ss -lti``: one ``listener.info()`` dict per listener (queues, SYN cookies)."""
        return [listener.info() for listener in self.core.listeners()] if self.core else []

    @property
    def counters(self) -> dict[str, int]:
        """The core's counters plus the runtime's (link rx/tx, ignored packets)."""
        merged: dict[str, int] = {}
        if self.core is not None:
            merged.update(self.core.counters)
        if self.driver is not None:
            for key, value in self.driver.counters.items():
                merged[key] = merged.get(key, 0) + value
        link = self.link
        for key in ("tx_dropped",):
            if link is not None and getattr(link, key, 0):
                merged[f"link_{key}"] = getattr(link, key)
        return merged


def _null_fault(fault: Any) -> bool:
    from tcpstack.link.fault import FaultSpec

    try:
        spec = fault if isinstance(fault, FaultSpec) else FaultSpec.parse(fault)
    except (ValueError, UserError):
        return False        # reported when the stack starts
    return spec.is_null


def _replace(obj: Any, changes: dict[str, Any]) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes) if changes else obj


async def open_connection(host: str, port: int, *, stack: Stack | None = None,
                          **kwargs: Any) -> tuple[TcpStreamReader, TcpStreamWriter]:
    """``asyncio.open_connection`` over tcpstack (the innermost running ``Stack``)."""
    return await (stack or Stack.current()).open_connection(host, port, **kwargs)


async def start_server(handler: Handler, port: int, host: str | None = None, *,
                       stack: Stack | None = None, **kwargs: Any) -> Server:
    """``asyncio.start_server`` over tcpstack (the innermost running ``Stack``)."""
    return await (stack or Stack.current()).start_server(handler, port, host, **kwargs)
