"""What the benchmark reports: one ``Figure`` per table row, in table order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: str = ""              # the project's target (issue 7), for the reader


FIGURES = (
    Figure("bulk-send", "bulk stack→kernel", "MB/s", True, "≥ 1000 (offload) / ≥ 60"),
    Figure("bulk-recv", "bulk kernel→stack", "MB/s", True, "≥ 800 (offload) / ≥ 60"),
    Figure("pipe-send", "CLI: pipe→stack→kernel", "MB/s", True, "≥ 0.9× bulk stack→kernel"),
    Figure("pipe-recv", "CLI: kernel→stack→pipe", "MB/s", True, "≥ 0.9× bulk kernel→stack"),
    Figure("rr-median", "1-byte round trip, median", "µs", False, "≤ 150"),
    Figure("rr-p99", "1-byte round trip, p99", "µs", False, ""),
    Figure("connect", "connect+close, sequential", "/s", True, "≥ 2000"),
    Figure("accept", "connect+close to tcpstack's server", "/s", True, ""),
    Figure("idle-alive", "idle connections alive", "conns", True, "all"),
    Figure("idle-memory", "memory per idle connection", "KiB", False, "≤ 16"),
    Figure("idle-open", "opening the idle connections", "conns/s", True, ""),
    Figure("loss1-send", "bulk stack→kernel, 1% loss", "MB/s", True, ""),
    Figure("loss1-recv", "bulk kernel→stack, 1% loss", "MB/s", True, ""),
    Figure("loss5-send", "bulk stack→kernel, 5% loss", "MB/s", True, "≥ 5"),
    Figure("loss5-recv", "bulk kernel→stack, 5% loss", "MB/s", True, "≥ 5"),
)
FIGURES_BY_KEY = {f.key: f for f in FIGURES}
