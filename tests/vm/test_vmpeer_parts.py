"""The VM helper's pieces that need neither root nor qemu."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from vmpeer import (
    CpioWriter,
    _is_static_elf,
    module_load_order,
    parse_proc_counters,
    pattern,
)

BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed")


@needs_busybox
@pytest.mark.parametrize("n", [0, 1, 2, 9, 10, 11, 1000, 123_457])
def test_pattern_is_what_busybox_seq_makes(n: int) -> None:
    """The guest generates its data with busybox seq/head; the host must reproduce it exactly."""
    made = subprocess.run([BUSYBOX or "", "sh", "-c", f'seq 1 "{n}" | head -c "{n}"'],
                          capture_output=True, check=True).stdout
    assert pattern(n) == made


def test_pattern_is_long_enough_for_large_sizes() -> None:
    data = pattern(5_000_000)
    assert len(data) == 5_000_000
    assert data.startswith(b"1\n2\n3\n") and data.count(b"\n") > 600_000


def test_module_load_order_puts_dependencies_first(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz "
        "kernel/net/core/failover.ko.xz kernel/drivers/virtio/virtio.ko.xz "
        "kernel/drivers/virtio/virtio_ring.ko.xz\n"
        "kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz\n"
        "kernel/net/core/failover.ko.xz:\n"
        "kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\n"
        "kernel/drivers/virtio/virtio_ring.ko.xz:\n"
        "kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio.ko.xz "
        "kernel/drivers/virtio/virtio_ring.ko.xz\n")
    order = [p.name for p in module_load_order(tmp_path, ["virtio_pci", "virtio_net"])]
    assert order == ["virtio_ring.ko.xz", "virtio.ko.xz", "virtio_pci.ko.xz", "failover.ko.xz",
                     "net_failover.ko.xz", "virtio_net.ko.xz"]


@needs_busybox
def test_cpio_archive_unpacks_with_busybox_cpio(tmp_path: Path) -> None:
    cpio = CpioWriter()
    cpio.directory("bin")
    cpio.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("odd-length", b"x" * 13)
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio.finish())
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([BUSYBOX or "", "cpio", "-i", "-d", "-F", str(archive)], cwd=out, check=True,
                   capture_output=True)
    assert (out / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.stat(out / "bin/hello").st_mode & 0o777 == 0o755
    assert os.readlink(out / "bin/sh") == "busybox"
    assert (out / "odd-length").read_bytes() == b"x" * 13


def test_parse_proc_counters_pairs_header_and_values() -> None:
    text = ("Ip: Forwarding DefaultTTL\nIp: 1 64\n"
            "Tcp: RtoAlgorithm RtoMin MaxConn OutRsts\nTcp: 1 200 -1 3\n"
            "TcpExt: SyncookiesSent TCPAbortOnData\nTcpExt: 0 7\n")
    counters = parse_proc_counters(text.splitlines())
    assert counters["Tcp.OutRsts"] == 3
    assert counters["Tcp.MaxConn"] == -1
    assert counters["TcpExt.TCPAbortOnData"] == 7
    assert counters["Ip.DefaultTTL"] == 64


def test_static_elf_detection_agrees_with_ldd() -> None:
    for binary in (os.path.realpath(sys.executable), BUSYBOX):
        if binary is None or not shutil.which("ldd"):
            continue
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True)
        static = "not a dynamic executable" in ldd.stdout + ldd.stderr
        assert _is_static_elf(Path(binary)) == static, binary
    assert not _is_static_elf(Path(__file__))
