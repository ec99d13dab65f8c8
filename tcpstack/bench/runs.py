"""The measuring loop shared by ``tools/bench`` and ``tools/attack``: each run of
a workload on each side, its figures gathered per side, failures noted."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from tcpstack.bench.processes import ProgramFailed
from tcpstack.errors import UserError

Samples = dict[str, dict[str, list[Any]]]


def run_workload(harness: Any, name: str, workload: Any, runs: int, sides: Sequence[str],
                 samples: Samples, errors: list[str], log: Callable[[str], None]) -> None:
    """``workload.run(harness, side, index)`` for every run and side, in turn."""
    harness.workload = name
    for index in range(runs):
        for side in sides:
            started = time.monotonic()
            try:
                figures = workload.run(harness, side, index)
            except (ProgramFailed, UserError) as exc:
                errors.append(f"{name} run {index + 1} {side}: {exc}")
                log(errors[-1])
                continue
            for key, value in figures.items():
                samples.setdefault(key, {}).setdefault(side, []).append(value)
            shown = ", ".join(f"{k}={'–' if v is None else format(v, '.4g')}"
                              for k, v in figures.items())
            log(f"{name} run {index + 1}/{runs} {side}: {shown} "
                f"({time.monotonic() - started:.1f} s)")
