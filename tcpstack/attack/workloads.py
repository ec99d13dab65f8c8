"""The workloads: each runs once against tcpstack and once against the kernel,
in two identical worlds (``topology``), with the same attacker programs.

A workload run returns ``{figure_key: value}`` for one side; a value may be
None (no legitimate client connected: no connect time). It raises
``ProgramFailed`` when a program fails or runs over its time.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tcpstack.attack import cpu
from tcpstack.attack import topology as topo
from tcpstack.attack.processes import AttackProcesses, ProgramFailed, Target
from tcpstack.attack.settings import Settings
from tcpstack.bench.stats import percentile

SIDES = ("tcpstack", "kernel")
START_TIMEOUT = 20.0
DATA_RCVBUF = 12 << 20       # the kernel target's receive buffer for the data workloads

TEMP_PREFIX = "tcpstack-attack-"
Figures = dict[str, float | None]


def remove_stale_dirs() -> list[str]:
    """Temporary directories of earlier runs whose process is gone."""
    removed = []
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        match = re.match(rf"^{TEMP_PREFIX}(\d+)-", name)
        if match and int(match.group(1)) != os.getpid() and not topo.alive(int(match.group(1))):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    run: Callable[[Attack, str, int], Figures]


class Attack:
    """Runs workloads over an ``AttackNetwork``; owns every process it starts."""

    def __init__(self, network: topo.AttackNetwork, settings: Settings) -> None:
        self.net = network
        self.settings = settings
        self.procs = AttackProcesses()
        self._ports = itertools.count(21000)
        self._dir = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")
        self.workload = ""
        self.notes: dict[str, Any] = {"tcpstack_counters": {}, "details": {}}

    def close(self) -> None:
        self.procs.stop_all()
        shutil.rmtree(self._dir, ignore_errors=True)

    def note(self, side: str, detail: dict[str, Any]) -> None:
        self.notes["details"].setdefault(self.workload, {}).setdefault(side, []).append(detail)

    # -- the target ------------------------------------------------------------------------

    @contextmanager
    def target(self, side: str, mode: str, rcvbuf: int = 0) -> Iterator[tuple[Target, int]]:
        """A listener on a fresh port: ``tcpstack listen PORT --echo|--discard`` on the
        TUN, or the kernel target program; stopped (by PID) on exit."""
        port = next(self._ports)
        world = self.net.worlds[side]
        name = f"{self.workload}-{side}-{port}"
        if side == "tcpstack":
            argv = ["-m", "tcpstack", "listen", str(port), f"--{mode}", "--stats",
                    "--netns", world.router_ns, "--tun", topo.TUN_NAME,
                    "--addr", topo.TARGET_ADDR,
                    "--tun-addr", f"{topo.ROUTER_TARGET_ADDR}/{topo.LINK_PREFIX}"]
            target = Target(self.procs, argv, None, self._dir, name)
            marker, stream = "listening on ", "stderr"
        else:
            argv = ["-m", "tcpstack.attack.target", "--port", str(port), "--mode", mode,
                    "--rcvbuf", str(rcvbuf)]
            target = Target(self.procs, argv, world.target_ns, self._dir, name)
            marker, stream = "ready", "stdout"
        try:
            target.wait_for(marker, START_TIMEOUT, stream)
            yield target, port
            alive = target.proc.poll() is None
        finally:
            code = target.stop()
        if side == "tcpstack":
            self.notes["tcpstack_counters"].setdefault(self.workload, []).append(
                target.tcpstack_counters())
        if not alive:
            raise ProgramFailed(f"the {side} target died (exit {code}): "
                                f"{target.last_error() or 'no output'}")

    # -- the attacker ------------------------------------------------------------------------

    def agent(self, side: str, command: str, port: int, target_pid: int, timeout: float,
              *args: str) -> dict[str, Any]:
        world = self.net.worlds[side]
        argv = ["-m", "tcpstack.attack.agent", command, "--port", str(port),
                "--target-pid", str(target_pid), "--router-ns", world.router_ns,
                "--target-link", world.target_link, *args]
        proc = self.procs.start(argv, world.attacker_ns)
        return self.procs.result(proc, timeout)

    # -- syn-flood and syn-trickle -----------------------------------------------------------

    def flood(self, side: str, index: int, syns: int, go_after: int, rate: int,
              clients: int) -> dict[str, Any]:
        """Spoofed SYNs (at ``rate`` per second, 0: full speed) and ``clients``
        legitimate clients that start after ``go_after`` of them."""
        s = self.settings
        world = self.net.worlds[side]
        self.net.reset_counters(side)
        fifo = os.path.join(self._dir, f"go-{side}-{index}-{time.monotonic_ns()}")
        os.mkfifo(fifo)
        started: list[subprocess.Popen[str]] = []
        try:
            with self.target(side, "echo") as (target, port):
                legit = self.procs.start(
                    ["-m", "tcpstack.attack.clients", "--host", topo.TARGET_ADDR, "--port",
                     str(port), "--count", str(clients), "--timeout", str(s.client_timeout),
                     "--go", fifo], world.attacker_ns)
                started.append(legit)
                self.procs.wait_ready(legit, START_TIMEOUT)
                flood = self.procs.start(
                    ["-m", "tcpstack.attack.agent", "flood", "--port", str(port),
                     "--count", str(syns), "--go", fifo, "--go-after", str(go_after),
                     "--rate", str(rate), "--seed", str(1000 + index),
                     "--deadline", str(30 + syns / max(rate, 1000))],
                    world.attacker_ns, stdin=subprocess.PIPE)
                started.append(flood)
                self.procs.wait_ready(flood, START_TIMEOUT + syns / 20000)
                link0 = self.net.target_link_stats(side)
                cpu.reset_peak(target.pid)
                rss0, _ = cpu.rss_mb(target.pid)
                meter = cpu.Meter(target.pid, include_self=False)
                assert flood.stdin is not None
                flood.stdin.write("start\n")
                flood.stdin.flush()
                flood_result = self.procs.result(flood, 60 + syns / max(rate, 1000))
                legit_result = self.procs.result(legit, s.client_timeout + 30)
                time.sleep(0.2)           # the last answers reach the counters
                used = meter.elapsed()
                rss1, hwm = cpu.rss_mb(target.pid)
                link1 = self.net.target_link_stats(side)
                counters = self.net.counters(side)
        finally:
            for proc in started:          # a failure leaves nobody waiting for a signal
                if proc.poll() is None:
                    self.procs.stop(proc)
            os.unlink(fifo)
        sent = flood_result["sent"]
        dropped = link1["tx_dropped"] - link0["tx_dropped"]
        total_cpu = used["target"] + used["softirqd"] + flood_result["sys"] + legit_result["sys"]
        times = [t * 1000 for t in legit_result["connect_times"]]
        detail = {"flood": flood_result, "clients": {k: v for k, v in legit_result.items()
                                                      if k != "connect_times"},
                  "answers_to_spoofed": counters, "dropped_before_target": dropped,
                  "cpu": {**used, "flood_sys": flood_result["sys"],
                          "clients_sys": legit_result["sys"], "total": total_cpu},
                  "rss_mb": {"before": rss0, "after": rss1, "peak": hwm}}
        self.note(side, detail)
        return {"completed": legit_result["completed"],
                "p50": statistics.median(times) if times else None,
                "p99": percentile(times, 0.99) if times else None,
                "synack": counters["synack"] / max(sent, 1),
                "rst": counters["rst"] / max(sent, 1),
                "reached": 100.0 * (sent - dropped) / max(sent, 1),
                "rate": sent / max(flood_result["seconds"], 1e-9) / 1000,
                "rss": max(0.0, hwm - rss0) if side == "tcpstack" else None,
                "cpu": total_cpu}

    # -- crafted-peer workloads ------------------------------------------------------------------

    def crafted(self, side: str, command: str, mode: str, rcvbuf: int, deadline: float,
                *args: str) -> dict[str, Any]:
        with self.target(side, mode, rcvbuf) as (target, port):
            result = self.agent(side, command, port, target.pid, deadline + 30,
                                "--deadline", str(deadline), *args)
        self.note(side, result)
        return result


# -- the workloads ---------------------------------------------------------------------------

def _syn_flood(att: Attack, side: str, index: int) -> Figures:
    s = att.settings
    r = att.flood(side, index, s.flood_syns, s.flood_go_after, 0, s.flood_clients)
    return {"flood-legit": r["completed"], "flood-connect-p50": r["p50"],
            "flood-connect-p99": r["p99"], "flood-synack": r["synack"], "flood-rst": r["rst"],
            "flood-reached": r["reached"], "flood-rate": r["rate"], "flood-rss": r["rss"],
            "flood-cpu": r["cpu"]}


def _syn_trickle(att: Attack, side: str, index: int) -> Figures:
    s = att.settings
    r = att.flood(side, index, s.trickle_syns, s.trickle_syns, s.trickle_rate,
                  s.trickle_clients)
    return {"trickle-legit": r["completed"], "trickle-synack": r["synack"]}


def _ms(cpu_used: dict[str, float]) -> float:
    return cpu_used["total"] * 1000


def _hol_loss(att: Attack, side: str, index: int) -> Figures:
    s = att.settings
    r = att.crafted(side, "hol", "discard", DATA_RCVBUF, s.deadline, "--window", str(s.window),
                    "--seed", str(2000 + index))
    hole = r["behind_hole"]
    if not r["in_order"]["ok"] or not hole["ok"]:
        raise ProgramFailed(f"the window was not delivered within {s.deadline:g} s "
                            f"(in order: {r['in_order']['ok']}, behind the hole: {hole['ok']})")
    return {"hol-inorder-cpu": _ms(r["in_order"]["cpu"]), "hol-hole-cpu": _ms(hole["cpu"]),
            "hol-fill-ack": hole["fill_to_full_ack"] * 1000,
            "hol-held": hole["first_ack"] / (1 << 20)}


def _ooo_adjacent(att: Attack, side: str, index: int) -> Figures:
    s = att.settings
    counts = ",".join(str(c) for c in s.adjacent_counts)
    r = att.crafted(side, "adjacent", "discard", DATA_RCVBUF,
                    s.deadline * len(s.adjacent_counts), "--counts", counts,
                    "--seed", str(3000 + index))
    figures: Figures = {}
    for run in r["runs"]:
        count = run["count"]
        if not run["ok"]:
            raise ProgramFailed(f"{count} segments behind the hole: not all acknowledged "
                                f"within {s.deadline:g} s (sent {run['sent']})")
        figures[f"adjacent-{count}-cpu"] = _ms(run["cpu"])
        figures[f"adjacent-{count}-per-seg"] = run["cpu"]["total"] / count * 1e6
    return figures


def _ooo_bomb(att: Attack, side: str, index: int) -> Figures:
    s = att.settings
    r = att.crafted(side, "bomb", "discard", DATA_RCVBUF, s.deadline,
                    "--count", str(s.bomb_count), "--seed", str(4000 + index))
    taken = max(0, r["taken_in"])
    return {"bomb-rate": taken / max(r["seconds"], 1e-9),
            "bomb-reached": 100.0 * taken / max(r["count"], 1),
            "bomb-acks": r["replies"] / max(taken, 1),
            "bomb-cpu": r["cpu"]["total"] / max(taken, 1) * 1e6,
            "bomb-intact": 1.0 if r["intact"] else 0.0}


def _invalid_storm(att: Attack, side: str, index: int) -> Figures:
    s = att.settings
    r = att.crafted(side, "storm", "echo", 0, s.deadline, "--oow", str(s.storm_oow),
                    "--rsts", str(s.storm_rsts), "--blind", str(s.storm_blind),
                    "--seed", str(5000 + index))
    return {"storm-oow": r["out_of_window_acks"]["answers"],
            "storm-rst": r["in_window_rsts"]["answers"],
            "storm-blind": r["blind"]["answers"],
            "storm-intact": 1.0 if r["intact"] else 0.0}


WORKLOADS = (
    Workload("syn-flood", "spoofed SYNs at full speed, legitimate clients meanwhile",
             _syn_flood),
    Workload("syn-trickle", "spoofed SYNs at a steady rate, then legitimate clients",
             _syn_trickle),
    Workload("hol-loss", "a full window behind a one-segment hole", _hol_loss),
    Workload("ooo-adjacent", "many small adjacent segments behind a one-byte hole",
             _ooo_adjacent),
    Workload("ooo-bomb", "one-byte segments at every other byte of the window", _ooo_bomb),
    Workload("invalid-storm", "out-of-window ACKs, inexact RSTs, blind RSTs and SYNs",
             _invalid_storm),
)
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}
GROUPS = {
    "syn": ("syn-flood", "syn-trickle"),
    "ooo": ("hol-loss", "ooo-adjacent", "ooo-bomb"),
    "all": tuple(WORKLOADS_BY_NAME),
}
