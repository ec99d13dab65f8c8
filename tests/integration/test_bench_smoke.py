"""The benchmark runs end to end with tiny sizes and reports well-formed output.

Not a timing test: nothing here depends on how fast anything is. It checks
that every workload ran on both sides, that the Markdown table and the JSON
agree and are complete, and that the benchmark left no namespace behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tcpstack.bench.figures import FIGURES
from tcpstack.bench.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent.parent

NUMBER_CELL = r"^-?[\d,.]+ \(-?[\d,.]+–-?[\d,.]+\)$"    # median (min–max)

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _private_netns_dir(directory: Path, argv: list[str]) -> list[str]:
    """``argv`` in a mount namespace of its own whose /var/run/netns is ``directory``.

    The namespaces the benchmark creates are named there and nowhere else, so
    other runs on the machine neither see them nor add to them; one it leaves
    behind stays in ``directory`` as a file (and the namespace itself goes
    with the mount namespace).
    """
    bind = 'mkdir -p /var/run/netns && mount --bind "$0" /var/run/netns && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", bind,
            str(directory), *argv]


def _run(*args: str, timeout: float = 240,
         netns_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, str(ROOT / "tools" / "bench"), *args]
    if netns_dir is not None:
        argv = _private_netns_dir(netns_dir, argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


def test_quick_bench_reports_every_figure_for_both_sides(tmp_path: Path) -> None:
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    out_json = tmp_path / "bench.json"
    profile_dir = tmp_path / "profile"
    profile_dir.mkdir()
    result = _run("--quick", "--runs", "2", "--json", str(out_json),
                  "--profile", str(profile_dir), netns_dir=netns_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.listdir(netns_dir) == []     # every namespace it created is gone

    report = json.loads(out_json.read_text())
    assert report["config"]["runs"] == 2
    assert report["config"]["workloads"] == [w.name for w in WORKLOADS]
    assert set(report["config"]["offload"]) == {w.name for w in WORKLOADS}
    assert set(report["config"]["offload"].values()) <= {"on", "off"}
    # Faults meet every wire-sized piece with the offloads on: the loss workloads keep them.
    assert all(report["config"]["offload"][w.name] == "on"
               for w in WORKLOADS if w.name.startswith("loss"))
    assert report["errors"] == []
    assert set(report["machine"]) >= {"cpu", "cores", "python", "kernel", "date"}
    rows = {row["figure"]: row for row in report["results"]}
    assert list(rows) == [f.key for f in FIGURES]
    for key, row in rows.items():
        for side in ("tcpstack", "kernel"):
            stats = row[side]
            assert len(stats["runs"]) == 2, (key, side)
            assert stats["min"] <= stats["median"] <= stats["max"], (key, side)
            if (key, side) != ("idle-memory", "kernel"):   # machine-wide slab: may shrink
                assert all(v > 0 for v in stats["runs"]), (key, side)
        if row["kernel"]["median"]:
            assert row["ratio"] == pytest.approx(
                row["tcpstack"]["median"] / row["kernel"]["median"])
        else:                           # the kernel's slab estimate came out 0: no ratio
            assert row["ratio"] is None
    # 100 idle connections in --quick: every one proved alive by an echo, both sides.
    assert rows["idle-alive"]["tcpstack"]["runs"] == [100, 100]
    assert rows["idle-alive"]["kernel"]["runs"] == [100, 100]
    # The kernel baseline under loss really lost packets (nftables counters).
    dropped = report["notes"]["kernel_loss_dropped"]
    assert set(dropped) == {"loss1-send", "loss1-recv", "loss5-send", "loss5-recv"}
    assert all(len(runs) == 2 for runs in dropped.values())
    # What the kernel resent while sending to tcpstack (its losses on the TUN
    # are invisible to tcpstack's own counters); with loss it must resend.
    resent = report["notes"]["kernel_sender_retransmits"]
    assert set(resent) == {"bulk-recv", "loss1-recv", "loss5-recv"}
    assert all(len(runs) == 2 and min(runs) >= 0 for runs in resent.values())
    assert sum(resent["loss5-recv"]) > 0
    assert "segments the kernel resent while sending to tcpstack" in result.stdout
    # The CLI through a pipe, against the API's bulk transfer of the same run.
    assert re.search(r"CLI through a pipe / its API's bulk transfer .*: "
                     r"pipe-send [0-9.]+×, pipe-recv [0-9.]+×", result.stdout)

    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| workload | unit | tcpstack | kernel")
    assert re.fullmatch(r"\|(-+:?\|)+", table[1].replace("---:", "---").replace(" ", ""))
    body = table[2:]
    assert [line.split("|")[1].strip() for line in body] == [f.label for f in FIGURES]
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 6
        assert re.match(NUMBER_CELL, cells[2]), line
        assert re.match(NUMBER_CELL, cells[3]), line
        assert cells[4].endswith("×"), line

    # --profile wrote one cProfile file per bulk direction, and one of rr (it was
    # chosen), and printed the top functions of each.
    for name in ("bulk-send", "bulk-recv", "rr"):
        assert (profile_dir / f"{name}.pstats").stat().st_size > 0
        assert f"cProfile of {name}" in result.stderr


def test_only_picks_workloads_and_json_goes_to_stdout() -> None:
    result = _run("--quick", "--runs", "1", "--only", "rr", "--json", "-", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    table, _, json_text = result.stdout.partition("\n{")
    report = json.loads("{" + json_text)
    assert [row["figure"] for row in report["results"]] == ["rr-median", "rr-p99"]
    assert "1-byte round trip, median" in table
    assert "bulk" not in table.split("\n\n", 1)[-1]


def test_bad_arguments_are_one_line_errors() -> None:
    result = _run("--only", "nonsense", timeout=30)
    assert result.returncode == 2
    assert "unknown workload 'nonsense'" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_kernel_cc_sets_the_baseline_congestion_control(tmp_path: Path) -> None:
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    result = _run("--quick", "--runs", "1", "--only", "rr", "--kernel-cc", "reno",
                  "--json", "-", timeout=120, netns_dir=netns_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    # tcpstack runs what the kernel runs when it has it: like against like.
    assert "congestion control tcpstack reno, kernel reno" in result.stdout
    report = json.loads("{" + result.stdout.partition("\n{")[2])
    assert report["config"]["congestion_control"] == {"tcpstack": "reno", "kernel": "reno"}
    assert os.listdir(netns_dir) == []


def test_stack_cc_sets_tcpstacks_congestion_control(tmp_path: Path) -> None:
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    result = _run("--quick", "--runs", "1", "--only", "loss1-send", "--stack-cc", "bbr",
                  "--kernel-cc", "reno", "--json", "-", timeout=120, netns_dir=netns_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "congestion control tcpstack bbr, kernel reno" in result.stdout
    report = json.loads("{" + result.stdout.partition("\n{")[2])
    rows = {row["figure"]: row for row in report["results"]}
    assert rows["loss1-send"]["tcpstack"]["median"] > 0
    assert os.listdir(netns_dir) == []


def test_kernel_cc_the_kernel_refuses_is_one_line(tmp_path: Path) -> None:
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    result = _run("--quick", "--runs", "1", "--only", "rr", "--kernel-cc", "nosuchcc",
                  timeout=60, netns_dir=netns_dir)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not allow congestion control 'nosuchcc'" in lines[0]
    assert os.listdir(netns_dir) == []
