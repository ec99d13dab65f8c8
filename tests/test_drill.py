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


# IPv6 twins: a representative part of the suite run again over IPv6 on both
# targets, the way Linux's selftests run packetdrill scripts for both families
# (--ip_version=ipv6 --mtu=1520, so that an MSS of 1460 still holds). Scripts
# that set their own --mtu are about IPv4's MTU arithmetic and stay out; the
# IPv6-only arithmetic (MSS = MTU - 60, 1220 without an option) is in ipv6/.
TWIN_DIRS = ("rfc9293/handshake", "rfc9293/close", "rfc9293/data", "rfc9293/reset",
             "rfc9293/flow-control", "rfc2018", "rfc5961", "reassembly")
TWINS = [p for p in SCRIPTS if str(p.relative_to(DRILL)).startswith(TWIN_DIRS)
         and "--mtu" not in p.read_text()]
TWIN_IDS = [str(p.relative_to(DRILL)) for p in TWINS]
IPV6 = {"ip_version": "ipv6", "mtu": 1520}


def test_the_ipv6_twins_are_a_representative_part() -> None:
    assert len(TWINS) >= 100
    assert {str(p.relative_to(DRILL)).split("/")[0] for p in TWINS} >= {
        "rfc9293", "rfc2018", "rfc5961", "reassembly"}


@pytest.mark.parametrize("script", TWINS, ids=TWIN_IDS)
def test_core_target_ipv6(script: Path) -> None:
    result = run_script(str(script), CoreTarget(), log=_quiet, **IPV6)
    _check(result, script, "core")


def _run_kernel_shard_ipv6(shard: list[tuple[int, str]]) -> list[tuple[str, Result]]:
    with open_target("kernel") as target:
        return [(path, run_script(path, target, log=_quiet, remote_port=51000 + 16 * index,
                                  **IPV6))   # type: ignore[arg-type]
                for index, path in shard]


@pytest.fixture(scope="session")
def kernel_results_ipv6() -> dict[str, Result]:
    jobs = KERNEL_JOBS
    shards = [[(i, str(p)) for i, p in enumerate(TWINS) if i % jobs == k] for k in range(jobs)]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        parts = pool.map(_run_kernel_shard_ipv6, shards)
    return {path: result for part in parts for path, result in part}


@pytest.mark.root
@pytest.mark.parametrize("script", TWINS, ids=TWIN_IDS)
def test_kernel_target_ipv6(script: Path, kernel_results_ipv6: dict[str, Result]) -> None:
    _check(kernel_results_ipv6[str(script)], script, "kernel")


@pytest.mark.root
def test_kernel_target_gets_ipv6_back_after_a_small_mtu() -> None:
    """Below 1280 bytes Linux takes IPv6 (addresses, routes, settings) off the
    TUN; the next IPv6 script on the same target must still find its address."""
    with open_target("kernel") as target:
        for name in ("fixes/mtu-68-mss-28.pkt", "ipv6/passive-open-mss-1440.pkt"):
            script = DRILL / name
            _check(run_script(str(script), target, log=_quiet), script, "kernel")
