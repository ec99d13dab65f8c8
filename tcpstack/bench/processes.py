"""Starting, waiting for and stopping the benchmark's programs, always bounded in time.

Every program is a Python process started in its own session (a Ctrl-C at
the terminal reaches only the benchmark, which then stops them by PID) and
reports one JSON object on its last stdout line. ``Processes.stop_all()``
terminates, then kills, whatever is still running.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tcpstack
from tcpstack.link import netns as ns

PACKAGE_ROOT = str(Path(tcpstack.__file__).resolve().parent.parent)


class ProgramFailed(Exception):
    """A benchmark program failed, timed out or reported nonsense (one line)."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + path if path else "")
    return env


class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen[str]] = []

    def start(self, argv: Sequence[str], netns: str | None = None, stdin: int | None = None,
              stdout: int | None = None) -> subprocess.Popen[str]:
        """``python -m ...`` in ``netns`` (or in ours when None); stdin from
        /dev/null and stdout to us unless file descriptors are given."""
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL if stdin is None else stdin,
            "stdout": subprocess.PIPE if stdout is None else stdout,
            "stderr": subprocess.PIPE, "text": True, "env": _env(),
            "start_new_session": True}
        argv = [sys.executable, *argv]
        proc = (ns.netns_popen(netns, argv, **kwargs) if netns
                else subprocess.Popen(argv, **kwargs))
        self.running.append(proc)
        return proc

    def wait_ready(self, proc: subprocess.Popen[str], timeout: float) -> None:
        """Until the program prints ``ready`` (a listening server)."""
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            err = self.stop(proc)
            raise ProgramFailed(f"peer did not start: {_last_line(err) or 'no output'}")

    def result(self, proc: subprocess.Popen[str], timeout: float,
               terminate: bool = False) -> dict[str, Any]:
        """Wait (at most ``timeout`` s; SIGTERM first when ``terminate``) for the JSON."""
        out, err = self.finish(proc, timeout, terminate)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise ProgramFailed(f"no result: {_last_line(err) or out[-200:]}") from None

    def finish(self, proc: subprocess.Popen[str], timeout: float,
               terminate: bool = False) -> tuple[str, str]:
        """Wait (at most ``timeout`` s) for a successful exit; return its stdout
        (empty when it did not go to us) and stderr."""
        if terminate and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise ProgramFailed(f"timed out after {timeout:.0f} s") from None
        finally:
            if proc.poll() is not None and proc in self.running:
                self.running.remove(proc)
        if proc.returncode != 0:
            raise ProgramFailed(f"exit {proc.returncode}: {_last_line(err) or 'no output'}")
        return out or "", err or ""

    def stop(self, proc: subprocess.Popen[str]) -> str:
        """Terminate (then kill) ``proc`` if it still runs; return its stderr."""
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
        except ValueError:          # pipes already read and closed
            err = ""
        if proc in self.running:
            self.running.remove(proc)
        return err or ""

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
