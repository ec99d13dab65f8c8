"""Every script under tests/drill/ on both targets: the core (virtual clock, no
root) and Linux in a private network namespace (marked ``root``)."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def kernel_target():  # type: ignore[no-untyped-def]
    # One namespace for the session; KernelTarget resets it between scripts and
    # removes it at the end (also when a test fails).
    with open_target("kernel") as target:
        yield target


@pytest.mark.root
@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_kernel_target(script: Path, kernel_target) -> None:  # type: ignore[no-untyped-def]
    index = SCRIPTS.index(script)
    result = run_script(str(script), kernel_target, log=_quiet,
                        remote_port=41000 + 16 * index)
    _check(result, script, "kernel")
