"""Every script under tests/drill/ on both targets: the core (virtual clock, no
root) and Linux in a private network namespace (marked ``root``)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tcpstack.drill.annotate import annotate
from tcpstack.drill.core_target import CoreTarget
from tcpstack.drill.report import Result, Status
from tcpstack.drill.runner import open_target, run_script

DRILL = Path(__file__).parent / "drill"
SCRIPTS = sorted(DRILL.glob("**/*.pkt"))
IDS = [str(p.relative_to(DRILL)) for p in SCRIPTS]


def _quiet(_: str) -> None:
    pass


def test_the_suite_has_at_least_250_scripts() -> None:
    assert len(SCRIPTS) >= 250


def _check(result: Result, script: Path, target: str) -> None:
    """PASS, or a SKIP the script itself declares for this target with a reason
    that is not a known bug (``// drill:<target> skip: why``, docs/drill.md)."""
    if result.status is Status.SKIP:
        declared = annotate(script.read_text(), target).skip
        assert declared and not declared.startswith("BUG"), "\n".join(result.lines(True))
        return
    assert result.status is Status.PASS, "\n".join(result.lines(verbose=True))


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_core_target(script: Path) -> None:
    result = run_script(str(script), CoreTarget(), log=_quiet)
    _check(result, script, "core")


# The kernel target runs in real time (retransmission timers, TIME-WAIT):
# scripts are shared out among worker processes, each with its own namespace
# (KernelTarget resets it between scripts and removes it at the end, also on
# failure), and the per-script tests below read their results.
KERNEL_JOBS = 4


def _run_kernel_shard(shard: list[tuple[int, str]]) -> list[tuple[str, Result]]:
    with open_target("kernel") as target:
        return [(path, run_script(path, target, log=_quiet, remote_port=41000 + 16 * index))
                for index, path in shard]


@pytest.fixture(scope="session")
def kernel_results() -> dict[str, Result]:
    jobs = KERNEL_JOBS
    shards = [[(i, str(p)) for i, p in enumerate(SCRIPTS) if i % jobs == k]
              for k in range(jobs)]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        parts = pool.map(_run_kernel_shard, shards)
    return {path: result for part in parts for path, result in part}


@pytest.mark.root
@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_kernel_target(script: Path, kernel_results: dict[str, Result]) -> None:
    _check(kernel_results[str(script)], script, "kernel")
