"""The workloads: each runs once on tcpstack and once kernel-to-kernel, same peer.

A workload run returns ``{figure_key: value}`` for one side (``tcpstack`` or
``kernel``) or raises ``ProgramFailed``. tcpstack is always the client (on
its TUN, against the kernel peer in the TUN namespace); the baseline's
client is the kernel in namespace ``-a`` against the same peer program in
``-b``, over the veth pair.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tcpstack.bench import payload
from tcpstack.bench.processes import Processes, ProgramFailed
from tcpstack.bench.topology import BenchNetwork

MB = 1_000_000
SIDES = ("tcpstack", "kernel")


@dataclass(frozen=True)
class Settings:
    bulk_bytes: int
    loss_bytes: int
    rr_count: int
    rr_warmup: int
    connect_count: int
    idle_conns: int
    idle_hold: float
    no_offload: bool
    timeout: float | None         # per program; None: derived from the workload's size
    ipv6: bool = False            # both sides over IPv6 (BenchNetwork.ipv6)
    stack_cc: str = "cubic"       # tcpstack's congestion control
    busy_poll_us: float = 0.0     # tcpstack's Stack(busy_poll=), 0: off


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    figures: tuple[str, ...]
    run: Callable[[Bench, str, int], dict[str, float]]


class Bench:
    """Runs workloads over a ``BenchNetwork``; owns the processes it starts."""

    def __init__(self, network: BenchNetwork, settings: Settings) -> None:
        self.net = network
        self.settings = settings
        self.procs = Processes()
        self._ports = itertools.count(20000)
        self.workload = ""                       # the one running, for the notes
        self.notes: dict[str, Any] = {"offload": {}, "offload_notes": {},
                                      "kernel_loss_dropped": {}, "stack_retransmits": {},
                                      "stack_timeouts": {}, "kernel_timeouts": {},
                                      "kernel_sender_retransmits": {},
                                      "stack_counters": {}, "stack_cpu_per_connect": [],
                                      "stack_cpu_per_accept": []}

    # -- one client/server pair --------------------------------------------------

    def _serve_argv(self, server: list[str], port: int | str) -> list[str]:
        """The kernel peer serving ``server`` on the run's family's wildcard."""
        wildcard = "::" if self.settings.ipv6 else "0.0.0.0"
        return ["-m", "tcpstack.bench.peers", "serve", *server, "--host", wildcard,
                "--port", str(port)]

    def _stack_argv(self, workload: list[str], port: int, fault: str | None = None,
                    profile: str | None = None) -> list[str]:
        """tcpstack's side of a workload (``tcpstack.bench.stackclient``) on the TUN."""
        argv = ["-m", "tcpstack.bench.stackclient", *workload,
                "--netns", self.net.tun_ns, "--tun", self.net.tun_name,
                "--addr", self.net.stack_addr, "--tun-addr", self.net.tun_cidr,
                "--host", self.net.tun_kernel_addr, "--port", str(port),
                "--cc", self.settings.stack_cc]
        if fault:
            argv += ["--fault", fault]
        if self.settings.no_offload:
            argv.append("--no-offload")
        if self.settings.busy_poll_us:
            argv += ["--busy-poll", f"{self.settings.busy_poll_us:g}"]
        if profile:
            argv += ["--profile", profile]
        return argv

    def pair(self, side: str, server: list[str], client: list[str], timeout: float,
             fault: str | None = None, terminate_server: bool = False,
             profile: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start the peer server, run one client against it, return both results."""
        port = next(self._ports)
        server_ns = self.net.tun_ns if side == "tcpstack" else self.net.server_ns
        peer = self.procs.start(self._serve_argv(server, port), netns=server_ns)
        try:
            self.procs.wait_ready(peer, timeout=15)
            if side == "tcpstack":
                proc = self.procs.start(self._stack_argv(client, port, fault, profile))
            else:
                proc = self.procs.start(["-m", "tcpstack.bench.peers", "client", *client,
                                         "--host", self.net.veth_server_addr,
                                         "--port", str(port)], netns=self.net.client_ns)
            client_result = self.procs.result(proc, timeout)
            server_result = self.procs.result(peer, 15, terminate=terminate_server)
        finally:
            self.procs.stop(peer)
        if side == "tcpstack" and self.workload and not profile:
            self.notes["offload"][self.workload] = client_result.get("offload")
            if client_result.get("offload_note"):
                self.notes["offload_notes"][self.workload] = client_result["offload_note"]
        return client_result, server_result

    def _timeout(self, default: float) -> float:
        return self.settings.timeout or default

    # -- request/response ------------------------------------------------------------

    def rr(self, side: str, profile: str | None = None) -> dict[str, float]:
        """Median and 99th percentile of the 1-byte round trips against an echo peer, µs."""
        s = self.settings
        result, _ = self.pair(side, ["echo"], ["rr", "--count", str(s.rr_count),
                                               "--warmup", str(s.rr_warmup)],
                              self._timeout(30 + (s.rr_count + s.rr_warmup) * 0.002),
                              terminate_server=True, profile=profile)
        return {"rr-median": result["median_us"], "rr-p99": result["p99_us"]}

    # -- connections -------------------------------------------------------------------

    def connect(self, side: str, profile: str | None = None) -> dict[str, float]:
        """Sequential connect+close per second against an echo peer."""
        s = self.settings
        result, _ = self.pair(side, ["echo"], ["connect", "--count", str(s.connect_count)],
                              self._timeout(30 + s.connect_count * 0.02),
                              terminate_server=True, profile=profile)
        if side == "tcpstack" and not profile and result.get("cpu_seconds"):
            # The client process's CPU time (process_time) per connect+close, µs.
            self.notes["stack_cpu_per_connect"].append(
                round(result["cpu_seconds"] / result["count"] * 1e6, 1))
        return {"connect": result["per_second"]}

    def accept(self, side: str) -> dict[str, float]:
        """Sequential connect+close per second by a kernel client (blocking
        sockets) against an echo server: tcpstack's (``start_server``, on its
        TUN, the client in the TUN's namespace) or, for the baseline, the
        kernel's over the veth pair -- the server side of short connections."""
        s = self.settings
        timeout = self._timeout(30 + s.connect_count * 0.02)
        if side == "kernel":
            result, _ = self.pair(side, ["echo"], ["connect", "--count", str(s.connect_count)],
                                  timeout, terminate_server=True)
            return {"accept": result["per_second"]}
        port = next(self._ports)
        server = self.procs.start(self._stack_argv(["serve"], port))
        try:
            self.procs.wait_ready(server, timeout=15)
            client = self.procs.start(["-m", "tcpstack.bench.peers", "client", "connect",
                                       "--count", str(s.connect_count),
                                       "--host", self.net.stack_addr, "--port", str(port)],
                                      netns=self.net.tun_ns)
            result = self.procs.result(client, timeout)
            served = self.procs.result(server, 15, terminate=True)
        finally:
            self.procs.stop(server)
        if served["accepted"] != s.connect_count:
            raise ProgramFailed(f"tcpstack accepted {served['accepted']} of "
                                f"{s.connect_count} connections")
        self.notes["stack_cpu_per_accept"].append(
            round(served["cpu_seconds"] / s.connect_count * 1e6, 1))
        if self.workload:
            self.notes["offload"][self.workload] = served.get("offload")
        return {"accept": result["per_second"]}

    # -- bulk ------------------------------------------------------------------------

    def bulk(self, side: str, direction: str, total: int, seed: int,
             loss: int = 0, profile: str | None = None) -> float:
        """MB/s from the receiver's first byte to its FIN; SHA-256 checked."""
        fault = f"loss={loss}%,seed={seed}" if loss else None
        timeout = self._timeout(60 + total / MB)            # a 1 MB/s floor
        server = (["sink", "--bytes", str(total)] if direction == "send"
                  else ["source", "--bytes", str(total), "--seed", str(seed)])
        client = (["send", "--bytes", str(total), "--seed", str(seed)] if direction == "send"
                  else ["recv", "--bytes", str(total)])
        key = f"loss{loss}-{direction}" if loss else f"bulk-{direction}"
        # Kernel TCP in these namespaces may be the sender whose timer fires.
        kernel_nss = ((self.net.client_ns, self.net.server_ns) if side == "kernel"
                      else (self.net.tun_ns,))
        timeouts_before = self.net.kernel_timeouts(kernel_nss) if loss else 0
        # The kernel sending to tcpstack: what it resent (on a TUN whose queue
        # overflows these are losses that tcpstack's own counters never see).
        kernel_sends = side == "tcpstack" and direction == "recv" and not profile
        resent_before = (self.net.kernel_retransmitted_segments(kernel_nss)
                         if kernel_sends else 0)
        if side == "kernel" and loss:
            self.net.set_kernel_loss(loss)
        try:
            client_result, server_result = self.pair(side, server, client, timeout,
                                                     fault=fault, profile=profile)
            if side == "kernel" and loss:
                self.notes["kernel_loss_dropped"].setdefault(key, []).append(
                    self.net.kernel_loss_dropped())
                self.notes["kernel_timeouts"].setdefault(key, []).append(
                    self.net.kernel_timeouts(kernel_nss) - timeouts_before)
        finally:
            if side == "kernel" and loss:
                self.net.clear_kernel_loss()
        if kernel_sends:
            self.notes["kernel_sender_retransmits"].setdefault(key, []).append(
                self.net.kernel_retransmitted_segments(kernel_nss) - resent_before)
        if side == "tcpstack" and not profile:
            self.notes["stack_retransmits"].setdefault(key, []).append(
                client_result.get("retransmits", 0))
            # Segments in and out, predicted, coalesced...: JSON only.
            self.notes["stack_counters"].setdefault(key, []).append(
                client_result.get("counters", {}))
            if loss:
                # The retransmission timer that matters is the sender's: for
                # kernel -> stack that is the kernel peer's, not tcpstack's.
                timeouts = (client_result.get("counters", {}).get("timer_retransmit", 0)
                            if direction == "send"
                            else self.net.kernel_timeouts(kernel_nss) - timeouts_before)
                self.notes["stack_timeouts"].setdefault(key, []).append(timeouts)
        received = server_result if direction == "send" else client_result
        return _throughput(received, total, seed)


    # -- the CLI with a pipe ------------------------------------------------------------

    def pipe(self, side: str, direction: str, total: int, seed: int) -> float:
        """MB/s of a stream through a pipe and a connection: a pipe into
        ``tcpstack connect``'s stdin (``send``), or its stdout into a pipe
        (``recv``); the kernel side runs a blocking-socket netcat
        (``peers client pipe-*``). Timed by the receiver, SHA-256 checked."""
        port = str(next(self._ports))
        timeout = self._timeout(60 + total / MB)
        server = (["sink", "--bytes", str(total)] if direction == "send"
                  else ["source", "--bytes", str(total), "--seed", str(seed)])
        if side == "tcpstack":
            client_ns = None
            client = ["-m", "tcpstack", "connect", self.net.tun_kernel_addr, port,
                      "--netns", self.net.tun_ns, "--tun", self.net.tun_name,
                      "--addr", self.net.stack_addr, "--tun-addr", self.net.tun_cidr,
                      "--stats", "--cc", self.settings.stack_cc]
            if self.settings.no_offload:
                client.append("--no-offload")
        else:
            client_ns = self.net.client_ns
            client = ["-m", "tcpstack.bench.peers", "client", f"pipe-{direction}",
                      "--host", self.net.veth_server_addr, "--port", port]
        peer = self.procs.start(self._serve_argv(server, port),
                                netns=self.net.tun_ns if side == "tcpstack"
                                else self.net.server_ns)
        started = [peer]
        try:
            self.procs.wait_ready(peer, timeout=15)
            read_end, write_end = os.pipe()
            try:
                if direction == "send":
                    started.append(self.procs.start(
                        ["-m", "tcpstack.bench.peers", "pipe", "source", "--bytes", str(total),
                         "--seed", str(seed)], stdout=write_end))
                    started.append(self.procs.start(client, netns=client_ns, stdin=read_end))
                else:
                    started.append(self.procs.start(client, netns=client_ns, stdout=write_end))
                    started.append(self.procs.start(
                        ["-m", "tcpstack.bench.peers", "pipe", "sink", "--bytes", str(total)],
                        stdin=read_end))
            finally:
                os.close(read_end)
                os.close(write_end)
            if direction == "send":
                self.procs.finish(started[1], timeout)
                _, client_err = self.procs.finish(started[2], timeout)
                received = self.procs.result(peer, 15)
            else:
                received = self.procs.result(started[2], timeout)
                _, client_err = self.procs.finish(started[1], 15)
                self.procs.finish(peer, 15)
        finally:
            for proc in started:
                self.procs.stop(proc)
        if side == "tcpstack" and self.workload:
            # --stats: "tcpstack offloads: on (checksum, TSO/GSO)" or "off ..."
            modes = [line.split()[2] for line in client_err.splitlines()
                     if line.startswith("tcpstack offloads: ")]
            self.notes["offload"][self.workload] = modes[0] if modes else None
        return _throughput(received, total, seed)


def _throughput(received: dict[str, Any], total: int, seed: int) -> float:
    """MB/s from a receiver's report, once its byte count and SHA-256 are right."""
    if received["bytes"] != total:
        raise ProgramFailed(f"received {received['bytes']} bytes, expected {total}")
    if received["sha256"] != payload.expected_sha256(total, seed):
        raise ProgramFailed("SHA-256 of the received bytes differs from what was sent")
    if received["seconds"] <= 0:
        raise ProgramFailed("transfer too short to time")
    return total / MB / received["seconds"]


# -- the workloads -----------------------------------------------------------------

def _bulk(direction: str, loss: int = 0) -> Callable[[Bench, str, int], dict[str, float]]:
    def run(bench: Bench, side: str, index: int) -> dict[str, float]:
        total = bench.settings.loss_bytes if loss else bench.settings.bulk_bytes
        key = f"loss{loss}-{direction}" if loss else f"bulk-{direction}"
        return {key: bench.bulk(side, direction, total, seed=index + 1, loss=loss)}
    return run


def _pipe(direction: str) -> Callable[[Bench, str, int], dict[str, float]]:
    def run(bench: Bench, side: str, index: int) -> dict[str, float]:
        return {f"pipe-{direction}": bench.pipe(side, direction, bench.settings.bulk_bytes,
                                                seed=index + 1)}
    return run


def _rr(bench: Bench, side: str, index: int) -> dict[str, float]:
    return bench.rr(side)


def _connect(bench: Bench, side: str, index: int) -> dict[str, float]:
    return bench.connect(side)


def _accept(bench: Bench, side: str, index: int) -> dict[str, float]:
    return bench.accept(side)


def _idle(bench: Bench, side: str, index: int) -> dict[str, float]:
    s = bench.settings
    client = ["idle", "--count", str(s.idle_conns), "--hold", str(s.idle_hold)]
    if side == "tcpstack":
        client += ["--linger", "5"]
    result, server = bench.pair(side, ["echo"], client,
                                bench._timeout(60 + s.idle_hold + s.idle_conns * 0.01),
                                terminate_server=True)
    alive = result["alive"]
    if server["max_open"] < s.idle_conns:
        # The kernel peer never held them all at once: not all were really open.
        alive = min(alive, server["max_open"])
    if side == "tcpstack" and result.get("established", alive) < alive:
        alive = result["established"]
    return {"idle-alive": alive, "idle-memory": result["kib_per_conn"],
            "idle-open": s.idle_conns / result["open_seconds"]}


WORKLOADS = (
    Workload("bulk-send", "bulk transfer tcpstack -> kernel", ("bulk-send",), _bulk("send")),
    Workload("bulk-recv", "bulk transfer kernel -> tcpstack", ("bulk-recv",), _bulk("recv")),
    Workload("pipe-send", "a pipe into tcpstack connect -> kernel", ("pipe-send",),
             _pipe("send")),
    Workload("pipe-recv", "kernel -> tcpstack connect into a pipe", ("pipe-recv",),
             _pipe("recv")),
    Workload("rr", "1-byte request/response latency", ("rr-median", "rr-p99"), _rr),
    Workload("connect", "sequential connect+close", ("connect",), _connect),
    Workload("accept", "sequential connect+close from kernel clients to tcpstack's server",
             ("accept",), _accept),
    Workload("idle", "concurrent idle connections", ("idle-alive", "idle-memory", "idle-open"),
             _idle),
    Workload("loss1-send", "bulk tcpstack -> kernel, 1% loss", ("loss1-send",),
             _bulk("send", 1)),
    Workload("loss1-recv", "bulk kernel -> tcpstack, 1% loss", ("loss1-recv",),
             _bulk("recv", 1)),
    Workload("loss5-send", "bulk tcpstack -> kernel, 5% loss", ("loss5-send",),
             _bulk("send", 5)),
    Workload("loss5-recv", "bulk kernel -> tcpstack, 5% loss", ("loss5-recv",),
             _bulk("recv", 5)),
)
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}
# Names --only accepts besides the workloads themselves.
GROUPS = {
    "bulk": ("bulk-send", "bulk-recv"),
    "pipe": ("pipe-send", "pipe-recv"),
    "loss": ("loss1-send", "loss1-recv", "loss5-send", "loss5-recv"),
    "loss1": ("loss1-send", "loss1-recv"),
    "loss5": ("loss5-send", "loss5-recv"),
    "all": tuple(WORKLOADS_BY_NAME),
}
