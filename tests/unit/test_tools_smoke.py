"""The tools under tools/ run: the micro-benchmarks print their figures, the
scenario gallery is up to date.

These are smoke tests: they check that each benchmark completes and reports
well-formed numbers, never how fast anything is.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def run_tool(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(TOOLS / name), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bench_wire_prints_parse_and_build_costs():
    out = run_tool("bench-wire", "--number", "200", "--runs", "1")
    for label in ("parse, TCP checksum verified", "build, both checksums"):
        line = next(line for line in out.splitlines() if label in line)
        assert re.search(rf"{NUMBER} µs", line), line


def test_bench_core_transfers_and_checks_the_bytes():
    out = run_tool("bench-core", "--mb", "1", "--runs", "1")
    assert "SHA-256 checked" in out
    assert re.search(rf"throughput\s+{NUMBER} MB/s", out), out
    assert re.search(rf"per data segment\s+{NUMBER} µs", out), out


def test_scenario_gallery_is_up_to_date():
    """docs/scenarios.md and its SVGs are what the scenario library draws today."""
    out = run_tool("gen-scenario-gallery", "--check")
    assert "0 file(s) would change" in out, out
