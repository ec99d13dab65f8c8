"""What absorbing a load costs: CPU time and memory, read from /proc.

"CPU" in the attack's figures is the same sum for both targets: the target
process's own CPU (``/proc/PID/schedstat``, nanoseconds), plus the kernel
time of the attacker-side processes (this machine's kernel accounts the
softirq work done on a packet's way -- the veth, the router, a kernel
target's TCP -- to the process whose system call sent it), plus the
``ksoftirqd`` threads (softirq work deferred to them). The attacker's own
user time (building frames in Python) is left out. For tcpstack that is its
process plus the kernel forwarding into and out of its TUN; for the kernel
it is the kernel's TCP plus the same forwarding.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) that process ``pid`` has used, 0 if gone."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return _stat_cpu(pid)


def _stat_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def softirqd_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="ascii") as f:
                if f.read().startswith("ksoftirqd/"):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB (10^6 bytes); zeros if gone."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024 / 1e6
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return rss, hwm


def reset_peak(pid: int) -> None:
    """Make VmHWM (peak RSS) start again from the current RSS (``clear_refs`` 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def own_system_cpu() -> float:
    """This process's kernel time (getrusage: microseconds, not clock ticks)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


@dataclass
class Meter:
    """CPU of a target process plus ksoftirqd (and this process's kernel time)."""

    target_pid: int
    include_self: bool = True

    def __post_init__(self) -> None:
        self._softirqd = softirqd_pids()
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        return (process_cpu(self.target_pid),
                sum(process_cpu(pid) for pid in self._softirqd),
                own_system_cpu() if self.include_self else 0.0)

    def restart(self) -> None:
        self._start = self._read()

    def elapsed(self) -> dict[str, float]:
        """Seconds since the start: target, softirqd, own system time and their sum."""
        now = self._read()
        target, softirqd, own = (b - a for a, b in zip(self._start, now, strict=True))
        return {"target": target, "softirqd": softirqd, "attacker_sys": own,
                "total": target + softirqd + own}
