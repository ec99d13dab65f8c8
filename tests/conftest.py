"""Test-suite wide rules.

Tests that need root, network namespaces and /dev/net/tun are marked
``root``; tests that boot a VM are marked ``vm``. Where the capability is
missing they skip with the reason -- except under ``CI=true``, where the
machine is known to have it and a capability skip fails the run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").lower() == "true"
CAPABILITY = "capability missing: "

# Hypothesis profiles. Tests with their own @settings keep them; the rest
# (tests/unit/test_core_fuzz.py's state machine among them) take the
# profile's budget. ``ci`` is loaded by default: hypothesis's own defaults
# (100 examples, 50 steps per stateful example), with the blob that
# reproduces a failure printed. ``fuzz`` is the nightly job's:
#     pytest tests/unit/test_core_fuzz.py --hypothesis-profile=fuzz
# (HYPOTHESIS_MAX_EXAMPLES=N overrides its example count).
settings.register_profile("ci", print_blob=True)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "5000")),
    stateful_step_count=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile("ci")   # --hypothesis-profile=NAME (pytest_configure) loads another


@functools.cache
def netns_capability() -> str | None:
    """None if we can create a namespace and a TUN device in it, else why not."""
    if os.geteuid() != 0:
        return "not running as root"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun does not exist"
    probe = (
        "import fcntl, os, struct, uuid\n"
        "from pyroute2 import netns\n"
        "name = 'tcps-probe-' + uuid.uuid4().hex[:8]\n"
        "netns.create(name)\n"
        "try:\n"
        "    netns.pushns(name)\n"
        "    try:\n"
        "        fd = os.open('/dev/net/tun', os.O_RDWR)\n"
        "        fcntl.ioctl(fd, 0x400454CA, struct.pack('16sH', b'probe0', 0x0001 | 0x1000))\n"
        "        os.close(fd)\n"
        "    finally:\n"
        "        netns.popns()\n"
        "finally:\n"
        "    netns.remove(name)\n"
    )
    try:
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"namespace probe failed: {exc}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"cannot create a namespace with a TUN device: {last}"
    return None


@functools.cache
def vm_capability() -> str | None:
    why = netns_capability()
    if why:
        return why
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed (tools/install --test installs it)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        why = None
        if item.get_closest_marker("vm"):
            why = vm_capability()
        elif item.get_closest_marker("root"):
            why = netns_capability()
        if why:
            item.add_marker(pytest.mark.skip(reason=CAPABILITY + why))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and CAPABILITY in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = (f"CI=true but this test was skipped for a missing capability "
                           f"({report.longrepr}); CI must run it")
