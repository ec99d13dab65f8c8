"""The attack's programs: the benchmark's ``Processes`` (bounded waits, JSON on the
last stdout line, stop by PID), plus the targets, whose output goes to files
so that a chatty target can never block on a full pipe."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from tcpstack.bench.processes import PACKAGE_ROOT, Processes, ProgramFailed

__all__ = ["AttackProcesses", "ProgramFailed", "Target"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + path if path else "")
    return env


PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the attack itself dies (even by
    SIGKILL), so that no target outlives it. (Programs started inside a
    namespace go through netns_popen's own preexec hook; they watch their
    parent themselves or end by their own deadline.)"""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class AttackProcesses(Processes):
    def start(self, argv: Sequence[str], netns: str | None = None, *,
              stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
              stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        """``python ARGV`` (``-m module ...``) in ``netns`` (or ours), in its own session."""
        from tcpstack.link import netns as ns

        kwargs: dict[str, Any] = {"stdin": stdin, "stdout": stdout, "stderr": stderr,
                                  "text": True, "env": _env(), "start_new_session": True}
        full = [sys.executable, *argv]
        proc = (ns.netns_popen(netns, full, **kwargs) if netns
                else subprocess.Popen(full, preexec_fn=_die_with_parent, **kwargs))
        self.running.append(proc)
        return proc


class Target:
    """A target program whose stdout and stderr go to files in ``directory``."""

    def __init__(self, procs: AttackProcesses, argv: Sequence[str], netns: str | None,
                 directory: str, name: str) -> None:
        self.procs = procs
        self.out_path = os.path.join(directory, f"{name}.out")
        self.err_path = os.path.join(directory, f"{name}.err")
        self._out: IO[str] = open(self.out_path, "w+", encoding="utf-8")  # noqa: SIM115
        self._err: IO[str] = open(self.err_path, "w+", encoding="utf-8")  # noqa: SIM115
        self.proc = procs.start(argv, netns, stdout=self._out, stderr=self._err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, marker: str, timeout: float, stream: str = "stdout") -> None:
        """Until a line starting with ``marker`` appears (the target is listening)."""
        path = self.out_path if stream == "stdout" else self.err_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(path, encoding="utf-8", errors="replace") as f:
                if any(line.startswith(marker) for line in f):
                    return
            if self.proc.poll() is not None:
                break
            select.select([], [], [], 0.05)
        self.stop()
        raise ProgramFailed(f"target did not start: {self.last_error() or 'no output'}")

    def text(self, stream: str = "stderr") -> str:
        path = self.err_path if stream == "stderr" else self.out_path
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def last_error(self) -> str:
        lines = [line.strip() for line in self.text().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def stop(self) -> int | None:
        """SIGTERM (then SIGKILL after 10 s); the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc in self.procs.running:
            self.procs.running.remove(self.proc)
        for f in (self._out, self._err):
            f.close()
        return self.proc.returncode

    def tcpstack_counters(self) -> dict[str, int]:
        """The ``tcpstack counters:`` line that ``listen --stats`` prints at exit."""
        counters: dict[str, int] = {}
        for line in self.text().splitlines():
            if line.startswith("tcpstack counters:"):
                for name, value in re.findall(r"(\w+)=(\d+)", line):
                    counters[name] = int(value)
        return counters
