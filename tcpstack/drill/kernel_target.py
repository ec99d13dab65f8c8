"""The kernel target: Linux, driven the way packetdrill drives it.

One private network namespace per run (``tcps-drill-<pid>``, removed at the
end, also on failure), holding a TUN device ``tun0`` opened without offloads:
local address 192.168.0.1/16 on it and a route to 192.0.2.0/24 (packetdrill's
remote) through it. The drill is the remote side: it writes inbound packets
to the TUN and reads what the kernel sends. Nothing leaves the namespace: it
has only ``lo`` and ``tun0``.

System calls run on real sockets created inside the namespace
(``run_in_netns``): a script's ``read(4, ..., 1000)`` is ``os.read`` on the
socket that stands for fd 4. Calls the script marks ``t1...t2`` run on a
thread and must return at t2; any other call runs on a helper thread too and
FAILs when it blocks (packetdrill would hang).

Between scripts the namespace is reused: sockets are closed with
SO_LINGER 0, every flow seen gets a RST (as packetdrill's reset_connection
does), sysctls a script set are put back, the TCP metrics cache is flushed and
each script gets its own listening port, so no TIME-WAIT or cached RTT of one
script reaches the next.

Backquoted lines: sysctl settings of per-namespace keys (``net.ipv4.tcp_*``,
``net.ipv4.ip_local_port_range``, ``net.core.somaxconn``) are written inside
the namespace; anything else SKIPs the script.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import struct
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass

from tcpstack.drill.packets import ACK, RST, SYN, WirePacket, build_ip_tcp, parse_ip_tcp
from tcpstack.drill.symbols import SYMBOLS
from tcpstack.drill.target import BLOCK, IPV6_LOCAL_IP, CallHandle, Env, Flow, Outcome, Skip, _Block
from tcpstack.link import netns
from tcpstack.link.tun import TunLink, open_tun

S = SYMBOLS
TUN_NAME = "tun0"
LOCAL_PREFIX = 16
REMOTE_NET = "192.0.2.0"
REMOTE_PREFIX = 24
LOCAL_PREFIX6 = 48                   # --ip_version=ipv6 (target.IPV6_LOCAL_IP/REMOTE_IP)
REMOTE_NET6 = "fd3d:fa7b:d17d::"
REMOTE_PREFIX6 = 48
IPV6_MIN_MTU = 1280
FIRST_BIND_PORT = 20000
# Linux's own default; a host may run another (BBR) that its namespaces inherit.
DEFAULT_CC = "cubic"
# A new namespace copies many TCP sysctls from the host's, which may be tuned
# (larger buffers change the window scale). Scripts expect Linux's defaults,
# as in a freshly booted kernel: set before every script.
LINUX_BASELINE: tuple[tuple[str, str], ...] = (
    ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
    ("net.ipv4.tcp_wmem", "4096 16384 4194304"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.ipv4.tcp_sack", "1"),
    ("net.ipv4.tcp_window_scaling", "1"),
    ("net.ipv4.tcp_ecn", "2"),
    ("net.ipv4.tcp_syn_retries", "6"),
    ("net.ipv4.tcp_synack_retries", "5"),
    ("net.ipv4.tcp_retries2", "15"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_slow_start_after_idle", "1"),
    ("net.ipv4.tcp_mtu_probing", "0"),
    ("net.ipv4.tcp_early_retrans", "3"),
    ("net.ipv4.tcp_recovery", "1"),
    ("net.ipv4.tcp_frto", "2"),
    ("net.ipv4.tcp_dsack", "1"),
    ("net.ipv4.tcp_reordering", "3"),
    ("net.ipv4.tcp_rfc1337", "0"),
    ("net.ipv4.tcp_no_metrics_save", "0"),
    ("net.ipv4.tcp_autocorking", "1"),
    ("net.ipv4.tcp_fastopen", "1"),
)
CALL_TIMEOUT = 2.0           # a call the script does not mark as blocking must return by then
_ALLOWED_SYSCTL_PREFIXES = ("net.ipv4.tcp_", "net.ipv4.ip_local_port_range",
                            "net.core.somaxconn", "net.ipv4.ip_no_pmtu_disc")

# struct tcp_info (linux/tcp.h), as far as this parses it.
_TCP_INFO = struct.Struct("=8B24I4Q6I")
_TCP_INFO_U8 = ("tcpi_state", "tcpi_ca_state", "tcpi_retransmits", "tcpi_probes",
                "tcpi_backoff", "tcpi_options")
_TCP_INFO_U32 = ("tcpi_rto", "tcpi_ato", "tcpi_snd_mss", "tcpi_rcv_mss", "tcpi_unacked",
                 "tcpi_sacked", "tcpi_lost", "tcpi_retrans", "tcpi_fackets",
                 "tcpi_last_data_sent", "tcpi_last_ack_sent", "tcpi_last_data_recv",
                 "tcpi_last_ack_recv", "tcpi_pmtu", "tcpi_rcv_ssthresh", "tcpi_rtt",
                 "tcpi_rttvar", "tcpi_snd_ssthresh", "tcpi_snd_cwnd", "tcpi_advmss",
                 "tcpi_reordering", "tcpi_rcv_rtt", "tcpi_rcv_space", "tcpi_total_retrans")
_TCP_INFO_U64 = ("tcpi_pacing_rate", "tcpi_max_pacing_rate", "tcpi_bytes_acked",
                 "tcpi_bytes_received")
_TCP_INFO_U32B = ("tcpi_segs_out", "tcpi_segs_in", "tcpi_notsent_bytes", "tcpi_min_rtt",
                  "tcpi_data_segs_in", "tcpi_data_segs_out")


def parse_tcp_info(raw: bytes) -> dict[str, int]:
    raw = raw.ljust(_TCP_INFO.size, b"\0")
    values = _TCP_INFO.unpack_from(raw)
    info: dict[str, int] = {}
    names = (*_TCP_INFO_U8, "_wscale", "_flags", *_TCP_INFO_U32, *_TCP_INFO_U64, *_TCP_INFO_U32B)
    for name, value in zip(names, values, strict=True):
        info[name] = value
    wscale = info.pop("_wscale")
    info.pop("_flags")
    info["tcpi_snd_wscale"] = wscale & 0x0F
    info["tcpi_rcv_wscale"] = wscale >> 4
    return info


@dataclass
class _FlowSeen:
    seq_end: int
    ack: int
    acked: bool


def _interfaces(mtu: int) -> list[str]:
    """The TUN's addresses: IPv4's, and IPv6's where the MTU allows it (RFC 8200 §5)."""
    ifaces = [f"{Env.local_ip}/{LOCAL_PREFIX}"]
    if mtu >= IPV6_MIN_MTU:
        ifaces.append(f"{IPV6_LOCAL_IP}/{LOCAL_PREFIX6}")
    return ifaces


def _ipv6_enabled(ifname: str) -> bool:
    """Whether the current thread's namespace runs IPv6 on ``ifname``."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6") as f:
            return f.read().strip() == "0"
    except FileNotFoundError:
        return False


class KernelTarget:
    name = "kernel"
    default_tolerance_usecs = 25000
    any_time_wait = 10.0

    def __init__(self, netns_name: str | None = None) -> None:
        self.ns = netns_name or f"tcps-drill-{os.getpid()}"
        self._link: TunLink | None = None
        self._env = Env()
        self._t0 = time.monotonic()
        self._queue: deque[tuple[float, bytes]] = deque()
        self._socks: dict[int, socket.socket] = {}
        self._all_socks: list[socket.socket] = []
        self._flows: dict[tuple[int, int], _FlowSeen] = {}
        self._sysctl_saved: dict[str, str] = {}
        self._mtu = 1500
        self._scripts = 0
        self._created = False
        self._cc = DEFAULT_CC

    # -- the namespace ------------------------------------------------------------
    def open(self) -> None:
        if netns.netns_exists(self.ns):
            netns.remove_netns(self.ns)        # left over by a killed run of this pid
        netns.create_netns(self.ns)
        self._created = True
        try:
            # Both families, for scripts of either --ip_version.
            self._link = open_tun(self.ns, TUN_NAME, _interfaces(self._mtu), mtu=self._mtu,
                                  offload=False)
            netns.run_in_netns(self.ns, self._add_route)
            # A fair queue would pace the kernel's packets and upset timing (Linux's
            # defaults.sh does the same).
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                netns.netns_run(self.ns, ["tc", "qdisc", "replace", "dev", TUN_NAME, "root",
                                          "pfifo"], capture_output=True, timeout=10)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _add_route() -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            (index,) = ipr.link_lookup(ifname=TUN_NAME)
            ipr.route("replace", dst=REMOTE_NET, dst_len=REMOTE_PREFIX, oif=index)
            if _ipv6_enabled(TUN_NAME):
                ipr.route("replace", dst=REMOTE_NET6, dst_len=REMOTE_PREFIX6, oif=index,
                          family=socket.AF_INET6)

    def close(self) -> None:
        self._close_sockets()
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._created:
            netns.remove_netns(self.ns)
            self._created = False

    # -- per script ------------------------------------------------------------------
    def begin(self, env: Env) -> None:
        if self._link is None:
            raise RuntimeError("KernelTarget.open() was not called")
        self._scripts += 1
        env.bind_port = FIRST_BIND_PORT + self._scripts % 20000
        self._env = env
        self._restore_sysctls()
        self._cc = DEFAULT_CC
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            netns.netns_run(self.ns, ["ip", "tcp_metrics", "flush", "all"],
                            capture_output=True, timeout=10)
        if env.mtu != self._mtu:
            netns.run_in_netns(self.ns, self._set_mtu, env.mtu)
            self._mtu = env.mtu
        self._drain()
        self._flows.clear()
        self.start_clock()

    def start_clock(self) -> None:
        """Script time 0 is now (after the init command)."""
        self._t0 = time.monotonic()

    @classmethod
    def _set_mtu(cls, mtu: int) -> None:
        """The new MTU; below 1280 Linux takes IPv6 off the link with its
        addresses and routes, so every change puts back what the MTU allows
        (without DAD: a tentative address would refuse bind())."""
        netns.configure_interface(TUN_NAME, [netns.parse_interface(i) for i in _interfaces(mtu)],
                                  mtu)
        cls._add_route()

    def finish(self) -> None:
        self._close_sockets()
        self._pump(0.0)
        for (sport, dport), seen in self._flows.items():
            if seen.acked:
                seq, ack, flags = seen.ack, seen.seq_end, RST | ACK
            else:
                seq, ack, flags = 0, seen.seq_end, RST | ACK
            self.inject(build_ip_tcp(WirePacket(self._env.remote_ip, self._env.local_ip,
                                                  dport, sport, seq, ack, flags, 0)))
        self._flows.clear()
        time.sleep(0.002)
        self._drain()

    def _close_sockets(self) -> None:
        for sock in self._all_socks:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()
        self._all_socks.clear()
        self._socks.clear()

    # -- time and packets -----------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self._t0

    def _pump(self, timeout: float) -> None:
        """Read what the kernel sent, waiting up to ``timeout`` for the first packet."""
        link = self._link
        assert link is not None
        if timeout > 0 and not self._queue:
            select.select([link.fileno()], [], [], timeout)
        while True:
            raw = link.recv()
            if raw is None:
                return
            when = self.now()
            self._queue.append((when, raw))
            self._note_flow(raw)

    def _note_flow(self, raw: bytes) -> None:
        pkt = parse_ip_tcp(raw)
        if pkt is None or pkt.src != self._env.local_ip:
            return
        if pkt.has(RST):
            self._flows.pop((pkt.src_port, pkt.dst_port), None)
            return
        end = (pkt.seq + len(pkt.payload) + (1 if pkt.has(SYN) else 0)) & 0xFFFFFFFF
        self._flows[(pkt.src_port, pkt.dst_port)] = _FlowSeen(end, pkt.ack, pkt.has(ACK))

    def _drain(self) -> None:
        self._pump(0.0)
        self._queue.clear()

    def advance(self, until: float) -> None:
        while True:
            left = until - self.now()
            if left <= 0:
                return
            self._pump(min(left, 0.05))
            if self._queue:     # keep reading promptly, sleep the rest
                remaining = until - self.now()
                if remaining > 0:
                    link = self._link
                    assert link is not None
                    select.select([link.fileno()], [], [], min(remaining, 0.05))
                    self._pump(0.0)

    def next_packet(self, deadline: float) -> tuple[float, bytes] | None:
        while not self._queue:
            left = deadline - self.now()
            if left <= 0:
                self._pump(0.0)
                break
            self._pump(left)
        if self._queue:
            return self._queue.popleft()
        return None

    def inject(self, raw: bytes) -> None:
        assert self._link is not None
        self._link.send(raw)

    # -- sysctls ----------------------------------------------------------------------
    def apply_sysctls(self, settings: tuple[tuple[str, str], ...], line: int) -> list[str]:
        notes = []
        writes: list[tuple[str, str, str]] = []
        for key, value in settings:
            key = key.replace("/", ".")
            if key == "net.ipv4.tcp_congestion_control":
                # Only the initial namespace may choose a default outside
                # tcp_allowed_congestion_control: each socket gets it instead.
                self._cc = value.strip()
                notes.append(f"congestion control {self._cc} set on each socket")
                continue
            if not key.startswith(_ALLOWED_SYSCTL_PREFIXES):
                raise Skip(f"sysctl {key} is not a per-namespace TCP setting the kernel target "
                           f"may change", line)
            writes.append((key, "/proc/sys/" + key.replace(".", "/"), value))
        if not writes:
            return notes
        done, error = netns.run_in_netns(self.ns, _write_sysctls, writes)
        for key, old in done:
            self._sysctl_saved.setdefault(key, old)
        if error is not None:
            raise Skip(error, line)
        notes += [f"sysctl {key}={value} (in namespace {self.ns})" for key, _, value in writes]
        return notes

    def _restore_sysctls(self) -> None:
        """Linux's defaults (LINUX_BASELINE) and whatever the last script changed."""
        wanted = dict(self._sysctl_saved)
        wanted.update(LINUX_BASELINE)
        writes = [(k, "/proc/sys/" + k.replace(".", "/"), v) for k, v in wanted.items()]
        netns.run_in_netns(self.ns, _write_sysctls_quietly, writes)
        self._sysctl_saved.clear()

    # -- system calls -------------------------------------------------------------------
    def syscall(self, name: str, args: list[object], expected: int | None) -> Outcome | _Block:
        fn = self._prepare(name, args, expected)
        if not self._may_block(name, args):
            return fn()
        box: list[Outcome] = []
        thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
        thread.start()
        thread.join(CALL_TIMEOUT)
        if thread.is_alive():
            self._unblock(args)
            thread.join(1.0)
            return BLOCK
        return box[0] if box else Outcome(-1, 5)

    def _may_block(self, name: str, args: list[object]) -> bool:
        """Whether the call could block: a blocking socket that is not ready."""
        if name not in ("accept", "accept4", "connect", "read", "recv", "recvfrom", "write",
                        "send", "sendto"):
            return False
        sock = self._sock(args)
        if sock is None:
            return False
        if fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK:
            return False
        if name == "connect":
            return True
        writing = name in ("write", "send", "sendto")
        r, w, _ = select.select([] if writing else [sock], [sock] if writing else [], [], 0)
        return not (w if writing else r)

    def start_blocking(self, name: str, args: list[object], expected: int | None) -> CallHandle:
        fn = self._prepare(name, args, expected)
        handle = CallHandle(name)

        def body() -> None:
            outcome = fn()
            handle.end_time = self.now()
            handle.outcome = outcome
            handle.done = True

        threading.Thread(target=body, daemon=True).start()
        time.sleep(0.001)
        return handle

    def _unblock(self, args: list[object]) -> None:
        sock = self._socks.get(args[0]) if args and isinstance(args[0], int) else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _sock(self, args: list[object]) -> socket.socket | None:
        fd = args[0] if args else None
        return self._socks.get(fd) if isinstance(fd, int) else None

    def _prepare(self, name: str, args: list[object], expected: int | None):
        """A function that makes the call and returns its Outcome (errors as errno)."""
        handler = getattr(self, "_sys_" + name, None)
        if handler is None:
            raise Skip(f"system call {name}() is not supported on the kernel target")
        if name != "socket" and self._sock(args) is None:
            return lambda: Outcome(-1, 9)    # EBADF
        call = handler(args, expected)

        def run() -> Outcome:
            try:
                return call()
            except OSError as exc:
                return Outcome(-1, exc.errno or 5)
        return run

    def _register(self, sock: socket.socket, expected: int | None) -> int:
        fd = expected if expected is not None and expected >= 0 else sock.fileno()
        self._socks[fd] = sock
        self._all_socks.append(sock)
        return fd

    def _sys_socket(self, args, expected):
        domain, kind, proto = ([*args, 0, 0, 0])[:3]
        if domain not in (..., S["AF_INET"], S["AF_INET6"]):
            raise Skip("only AF_INET and AF_INET6 sockets are supported")
        # packetdrill's --ip_version=ipv6 reads AF_INET in a script as AF_INET6.
        family = socket.AF_INET6 if self._env.ip_version == 6 else socket.AF_INET

        def call() -> Outcome:
            sock = netns.run_in_netns(self.ns, socket.socket, family, kind, proto)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, self._cc.encode())
            return Outcome(self._register(sock, expected))
        return call

    def _sys_bind(self, args, expected):
        sock = self._sock(args)
        if len(args) > 1 and args[1] is not ...:
            raise Skip("bind() to an explicit address is not supported (use ...)")
        return lambda: (sock.bind((self._env.local_ip, self._env.bind_port)), Outcome(0))[1]

    def _sys_listen(self, args, expected):
        sock = self._sock(args)
        backlog = args[1] if len(args) > 1 and isinstance(args[1], int) else 128
        return lambda: (sock.listen(backlog), Outcome(0))[1]

    def _sys_accept(self, args, expected):
        sock = self._sock(args)

        def call() -> Outcome:
            conn, _ = sock.accept()
            return Outcome(self._register(conn, expected))
        return call

    _sys_accept4 = _sys_accept

    def _sys_connect(self, args, expected):
        sock = self._sock(args)
        if len(args) > 1 and args[1] is not ...:
            raise Skip("connect() to an explicit address is not supported (use ...)")

        def call() -> Outcome:
            err = sock.connect_ex((self._env.remote_ip, self._env.connect_port))
            return Outcome(0) if err == 0 else Outcome(-1, err)
        return call

    def _sys_read(self, args, expected):
        sock = self._sock(args)
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        flags = args[3] if len(args) > 3 and isinstance(args[3], int) else 0
        if len(args) > 3:
            return lambda: Outcome(len(sock.recv(count, flags)))
        return lambda: Outcome(len(os.read(sock.fileno(), count)))

    _sys_recv = _sys_read

    def _sys_recvfrom(self, args, expected):
        sock = self._sock(args)
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        flags = args[3] if len(args) > 3 and isinstance(args[3], int) else 0
        return lambda: Outcome(len(sock.recvfrom(count, flags)[0]))

    def _sys_write(self, args, expected):
        sock = self._sock(args)
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        flags = args[3] if len(args) > 3 and isinstance(args[3], int) else 0
        data = bytes(count)
        if len(args) > 3:
            return lambda: Outcome(sock.send(data, flags | S["MSG_NOSIGNAL"]))
        return lambda: Outcome(os.write(sock.fileno(), data))

    _sys_send = _sys_write
    _sys_sendto = _sys_write

    def _sys_shutdown(self, args, expected):
        sock = self._sock(args)
        how = args[1] if len(args) > 1 and isinstance(args[1], int) else 1
        return lambda: (sock.shutdown(how), Outcome(0))[1]

    def _sys_close(self, args, expected):
        sock = self._sock(args)
        fd = args[0]

        def call() -> Outcome:
            self._socks.pop(fd, None)   # type: ignore[arg-type]
            if sock in self._all_socks:
                self._all_socks.remove(sock)
            sock.close()
            return Outcome(0)
        return call

    def _sys_fcntl(self, args, expected):
        sock = self._sock(args)
        cmd = args[1] if len(args) > 1 and isinstance(args[1], int) else -1
        arg = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        if cmd in (S["F_GETFL"], S["F_GETFD"]):
            return lambda: Outcome(fcntl.fcntl(sock.fileno(), cmd))
        return lambda: Outcome(fcntl.fcntl(sock.fileno(), cmd, arg))

    def _sys_ioctl(self, args, expected):
        sock = self._sock(args)
        cmd = args[1] if len(args) > 1 and isinstance(args[1], int) else -1
        if cmd != S["SIOCATMARK"]:
            raise Skip(f"ioctl command {cmd} is not supported on the kernel target")
        return lambda: Outcome(0, value=struct.unpack(
            "i", fcntl.ioctl(sock.fileno(), cmd, struct.pack("i", 0)))[0])

    def _sys_getsockname(self, args, expected):
        sock = self._sock(args)
        return lambda: (sock.getsockname(), Outcome(0))[1]

    def _sys_getpeername(self, args, expected):
        sock = self._sock(args)
        return lambda: (sock.getpeername(), Outcome(0))[1]

    def _sys_setsockopt(self, args, expected):
        sock = self._sock(args)
        level, name, value = ([*args, None, None, None, None])[1:4]
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, dict) and "onoff" in value:
            raw: int | bytes = struct.pack("ii", int(value["onoff"]), int(value.get("linger", 0)))
        elif isinstance(value, str):
            raw = value.encode()
        elif isinstance(value, int):
            raw = value
        else:
            raise Skip(f"setsockopt value {value!r} is not supported on the kernel target")
        return lambda: (sock.setsockopt(level, name, raw), Outcome(0))[1]

    def _sys_getsockopt(self, args, expected):
        sock = self._sock(args)
        level, name = ([*args, None, None])[1:3]
        if (level, name) == (S["SOL_TCP"], S["TCP_INFO"]):
            raise Skip("getsockopt(TCP_INFO) with a struct is not supported; use %{ }% code")
        if (level, name) == (S["SOL_TCP"], S["TCP_CONGESTION"]):
            return lambda: Outcome(0, value=sock.getsockopt(level, name, 16).rstrip(b"\0")
                                   .decode())
        return lambda: Outcome(0, value=sock.getsockopt(level, name))

    # -- tcp_info ------------------------------------------------------------------------
    def tcp_info(self, fd: int | None, flow: Flow | None) -> dict[str, int]:
        sock = self._socks.get(fd) if fd is not None else None
        if sock is None:
            raise Skip("tcp_info: no socket for the connection under test (not accepted yet)")
        return parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256))


def _write_sysctls_quietly(writes: list[tuple[str, str, str]]) -> None:
    """Like _write_sysctls, skipping keys this kernel lacks or refuses."""
    for write in writes:
        _write_sysctls([write])


def _write_sysctls(writes: list[tuple[str, str, str]]) -> tuple[list[tuple[str, str]],
                                                                  str | None]:
    """Inside the namespace: write each (key, path, value) whose value differs; the
    (key, old value) pairs written, and why the first failure failed."""
    done: list[tuple[str, str]] = []
    for key, path, value in writes:
        try:
            with open(path) as f:
                old = f.read().strip()
        except OSError:
            return done, f"sysctl {key} does not exist in this kernel's namespaces"
        if " ".join(old.split()) == " ".join(value.split()):
            continue
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as exc:
            return done, f"sysctl {key}={value}: {exc.strerror or exc}"
        done.append((key, old))
    return done, None
