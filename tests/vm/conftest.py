"""Fixtures for the VM tests: one namespace and one booted guest per test module."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
from collections.abc import Iterator

import pytest
from vmpeer import (
    Namespace,
    VmPeer,
    VmPeerError,
    counter_delta,
    find_guest_kernel,
    find_static_busybox,
)

IN_CI = os.environ.get("CI", "").lower() == "true"
# Counters of the guest kernel that must not move while tcpstack talks to it.
RESET_COUNTERS = ("Tcp.OutRsts", "Tcp.EstabResets", "Tcp.AttemptFails", "Tcp.InCsumErrors",
                  "Tcp.InErrs", "TcpExt.TCPAbortOnData", "TcpExt.TCPAbortOnClose")


@dataclasses.dataclass
class VmNetwork:
    ns: Namespace
    vm: VmPeer

    def kernel_socket(self) -> socket.socket:
        """A TCP socket of the namespace's kernel (the host side of the TAP)."""
        with self.ns.entered():
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def assert_no_resets(self, before: dict[str, int]) -> None:
        delta = counter_delta(before, self.vm.tcp_counters(), RESET_COUNTERS)
        assert all(v == 0 for v in delta.values()), f"guest TCP counters moved: {delta}"


def _missing_guest_parts() -> str | None:
    try:
        find_guest_kernel()
        find_static_busybox()
    except VmPeerError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def vm_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmNetwork]:
    why = _missing_guest_parts()
    if why:
        # conftest.py at the top turns this skip into a failure under CI=true.
        pytest.skip(f"capability missing: {why}")
    log = tmp_path_factory.mktemp("vm") / "console.log"
    with Namespace() as ns:
        ns.enable_forwarding()
        vm = VmPeer(ns.name, console_log=log)
        try:
            vm.start()
        except BaseException:
            vm.stop()
            raise
        try:
            yield VmNetwork(ns, vm)
        finally:
            vm.stop()


@pytest.fixture
def tcpdump_available() -> None:
    if not shutil.which("tcpdump"):
        pytest.skip("capability missing: tcpdump is not installed (tools/install --test)")
