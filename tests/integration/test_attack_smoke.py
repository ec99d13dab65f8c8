"""tools/attack runs end to end with tiny loads and reports well-formed output.

Not a measurement: nothing here depends on how well either target resists.
It checks that every workload ran against both targets, that the Markdown
table has a number in each cell that can have one, that the JSON agrees, and
that the tool left no namespace behind. Every packet stays in the
namespaces the tool creates; those are named in a private /var/run/netns
(a mount namespace of the test's own), so a leftover shows up as a file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tcpstack.attack.figures import figures
from tcpstack.attack.settings import QUICK
from tcpstack.attack.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent.parent
NUMBER = r"-?[\d,.]+(?:e[+-]?\d+)?"
CELL = rf"^{NUMBER}(?: \({NUMBER}–{NUMBER}\))?$"
# A connect time exists only when a legitimate client connected.
MAY_BE_EMPTY = {"flood-connect-p50", "flood-connect-p99"}

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _private_netns_dir(directory: Path, argv: list[str]) -> list[str]:
    """``argv`` in a mount namespace of its own whose /var/run/netns is ``directory``."""
    bind = 'mkdir -p /var/run/netns && mount --bind "$0" /var/run/netns && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", bind,
            str(directory), *argv]


def _run(*args: str, timeout: float = 300,
         netns_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, str(ROOT / "tools" / "attack"), *args]
    if netns_dir is not None:
        argv = _private_netns_dir(netns_dir, argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


def test_quick_attack_reports_every_workload_against_both_targets(tmp_path: Path) -> None:
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    out_json = tmp_path / "attack.json"
    result = _run("--quick", "--runs", "1", "--json", str(out_json), netns_dir=netns_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.listdir(netns_dir) == []          # every namespace it created is gone

    report = json.loads(out_json.read_text())
    assert report["errors"] == []
    assert report["config"]["workloads"] == [w.name for w in WORKLOADS]
    assert report["config"]["quick"] is True
    expected = figures(QUICK)
    rows = {row["figure"]: row for row in report["results"]}
    assert list(rows) == [f.key for f in expected]
    completed = {side: rows["flood-legit"][side]["median"] for side in ("tcpstack", "kernel")}
    for figure in expected:
        row = rows[figure.key]
        for side in ("tcpstack", "kernel"):
            stats = row[side]
            if side == "kernel" and not figure.kernel:
                assert stats is None, figure.key
                continue
            assert len(stats["runs"]) == 1, (figure.key, side)
            if figure.key in MAY_BE_EMPTY and completed[side] == 0:
                continue
            assert stats["median"] is not None, (figure.key, side)
            assert stats["median"] >= 0, (figure.key, side)
    # The crafted connections survived what the quick loads threw at them, and
    # the SYN-ACKs to spoofed addresses were counted on the attacker's side.
    for side in ("tcpstack", "kernel"):
        assert rows["storm-intact"][side]["median"] == 1, side
        assert rows["bomb-intact"][side]["median"] == 1, side
        assert rows["flood-synack"][side]["median"] > 0, side
    assert set(report["notes"]["seconds"]) == {w.name for w in WORKLOADS}

    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0] == "| workload | figure | unit | tcpstack | kernel | tcpstack/kernel |"
    body = table[2:]
    assert [line.split("|")[2].strip() for line in body] == [f.label for f in expected]
    for line, figure in zip(body, expected, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 6, line
        assert cells[0] == figure.workload, line
        for side, cell in (("tcpstack", cells[3]), ("kernel", cells[4])):
            if side == "kernel" and not figure.kernel:
                assert cell == "n/a", line
            elif figure.key in MAY_BE_EMPTY and completed[side] == 0:
                assert cell == "–", line
            else:
                assert re.match(CELL, cell), line
    assert "time taken: syn-flood" in result.stdout


def test_only_picks_workloads_and_json_goes_to_stdout(tmp_path: Path) -> None:
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    result = _run("--quick", "--runs", "1", "--only", "invalid-storm", "--json", "-",
                  timeout=120, netns_dir=netns_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.listdir(netns_dir) == []
    table, _, json_text = result.stdout.partition("\n{")
    report = json.loads("{" + json_text)
    assert {row["workload"] for row in report["results"]} == {"invalid-storm"}
    assert "syn-flood" not in table


@pytest.mark.parametrize(("args", "message"), [
    (("--only", "nonsense"), "unknown workload 'nonsense'"),
    (("--runs", "0"), "bad number '0'"),
    (("--adjacent-counts", "10,x"), "bad number 'x'"),
    (("--json", "/nonexistent-dir/out.json", "--only", "hol-loss"), "no directory"),
])
def test_bad_arguments_are_one_line_errors(args: tuple[str, ...], message: str) -> None:
    result = _run(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3
