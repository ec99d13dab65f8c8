"""A second Linux kernel as a TCP peer: a tiny VM booted with qemu inside a test namespace.

The guest is Debian's own kernel (package ``linux-image-amd64``) with an
initramfs built here from ``busybox-static`` and the kernel's virtio-net
modules. It needs no disk image and downloads nothing. Its ``/init`` brings
up ``eth0`` with a static address and runs busybox ``nc`` servers:

* port 5001, the **sink**: reads until EOF, answers ``"<bytes> <sha256>\\n"``
  and prints ``SINK bytes=N sha256=H`` on the serial console;
* port 5002, the **source**: reads one line with a byte count N, sends the
  first N bytes of :func:`pattern` and closes.

Commands written to the serial console (one line each):

* ``connect HOST PORT N`` -- the guest connects to HOST:PORT, sends
  ``pattern(N)``, half-closes, reads until EOF and prints
  ``CONNECT-DONE rc=R bytes=M sha256=H`` (what it received);
* ``counters`` -- prints ``/proc/net/snmp`` and ``/proc/net/netstat``
  between ``COUNTERS-BEGIN`` and ``COUNTERS-END``.

Network layout (all inside one namespace the caller owns)::

    tcpstack (10.7.0.2) -- TUN 10.7.0.1/24 --[ip_forward=1]-- TAP 10.8.0.1/24 -- guest 10.8.0.2
    (and over IPv6: fd00:7::2 -- fd00:7::1/64 --[forwarding]-- fd00:9::1/64 -- fd00:9::2)

Only that namespace forwards; the root namespace is never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

SINK_PORT = 5001
SOURCE_PORT = 5002
READY_MARK = "VM-READY"
# The modules the guest needs for a virtio-net NIC on qemu's PCI bus; their
# dependencies come from the kernel's modules.dep.
GUEST_MODULES = ("virtio_pci", "virtio_net")
INITRAMFS_FORMAT = 1  # bump when the layout below changes, to invalidate caches


class VmPeerError(RuntimeError):
    """Something the person running the VM can fix; the message says what."""


# --------------------------------------------------------------------------- data


def pattern(nbytes: int) -> bytes:
    """The first ``nbytes`` bytes of ``seq 1 nbytes`` ("1\\n2\\n3\\n..."), as the guest makes them.

    Varied, position-dependent content, so a lost, duplicated or reordered
    segment changes the checksum.
    """
    chunks: list[bytes] = []
    size = 0
    start = 1
    while size < nbytes:
        block = ("\n".join(map(str, range(start, start + 65536))) + "\n").encode()
        chunks.append(block)
        size += len(block)
        start += 65536
    return b"".join(chunks)[:nbytes]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ kernel + initramfs


@dataclasses.dataclass(frozen=True)
class GuestKernel:
    version: str
    vmlinuz: Path
    modules_dir: Path


def find_guest_kernel() -> GuestKernel:
    """The newest kernel in /boot whose modules are installed.

    TCPSTACK_VM_KERNEL=VERSION picks one.
    """
    wanted = os.environ.get("TCPSTACK_VM_KERNEL")
    candidates = []
    for vmlinuz in sorted(Path("/boot").glob("vmlinuz-*")):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        modules_dir = Path("/usr/lib/modules") / version
        if (modules_dir / "modules.dep").is_file() and (wanted is None or version == wanted):
            candidates.append(GuestKernel(version, vmlinuz, modules_dir))
    if not candidates:
        raise VmPeerError(
            "no guest kernel: need /boot/vmlinuz-VERSION and /usr/lib/modules/VERSION/modules.dep"
            + (f" for TCPSTACK_VM_KERNEL={wanted}" if wanted else "")
            + " (apt-get install linux-image-amd64)")
    candidates.sort(key=lambda k: [int(p) if p.isdigit() else p
                                   for p in re.split(r"[.-]", k.version)])
    kernel = candidates[-1]
    if not os.access(kernel.vmlinuz, os.R_OK):
        raise VmPeerError(f"cannot read {kernel.vmlinuz} (run as root)")
    return kernel


def module_load_order(modules_dir: Path, names: Iterable[str]) -> list[Path]:
    """Relative paths of ``names`` and their dependencies, dependencies first (from modules.dep)."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        module, _, rest = line.partition(":")
        deps[module] = rest.split()
        by_name[_module_name(module)] = module
    order: list[str] = []

    def visit(module: str) -> None:
        if module in order:
            return
        # modules.dep lists direct and indirect dependencies; visiting each
        # one first yields an order in which every insmod finds its symbols.
        for dep in reversed(deps.get(module, [])):
            visit(dep)
        order.append(module)

    for name in names:
        if name not in by_name:
            raise VmPeerError(f"kernel module {name} not found in {modules_dir}/modules.dep")
        visit(by_name[name])
    return [Path(m) for m in order]


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def _read_module(path: Path) -> bytes:
    """The module's ELF bytes; .ko.xz/.ko.gz are decompressed, .ko.zst via the zstd tool."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        zstd = shutil.which("zstd")
        if not zstd:
            raise VmPeerError(f"{path} is zstd-compressed; install zstd")
        return subprocess.run([zstd, "-dc", str(path)], check=True, capture_output=True).stdout
    return data


def find_static_busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox") or ""):
        if candidate and os.path.isfile(candidate) and _is_static_elf(Path(candidate)):
            return Path(candidate)
    raise VmPeerError("no statically linked busybox (apt-get install busybox-static)")


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit little-endian ELF without a PT_INTERP (dynamic loader) header."""
    with path.open("rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    pt_interp = 3
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != pt_interp
               for i in range(phnum))


class CpioWriter:
    """The "newc" cpio format the kernel unpacks as an initramfs.

    See the kernel's Documentation/driver-api/early-userspace/buffer-format.rst.
    """

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"",
               rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(encoded), 0)
        self._ino += 1
        self._out.write(b"070701" + b"".join(b"%08X" % v for v in fields) + encoded)
        self._pad()
        self._out.write(data)
        self._pad()

    def _pad(self) -> None:
        self._out.write(b"\0" * (-self._out.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self._out.getvalue()


def _guest_scripts(modules: list[str]) -> dict[str, str]:
    """The guest's /init and its helpers (busybox ash).

    The addresses come from the kernel command line (tcps.addr=, tcps.gw=, and
    for IPv6 tcps.addr6=, tcps.gw6=).
    """
    init = f"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp
for m in {' '.join(modules)}; do
    insmod /lib/modules/$m.ko || echo "VM-ERROR insmod $m"
done
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        tcps.addr=*) ADDR=${{arg#tcps.addr=}};; tcps.gw=*) GW=${{arg#tcps.gw=}};;
        tcps.addr6=*) ADDR6=${{arg#tcps.addr6=}};; tcps.gw6=*) GW6=${{arg#tcps.gw6=}};;
    esac
done
i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then echo "VM-ERROR no eth0"; poweroff -f; fi
    usleep 50000
done
ip link set lo up
# No duplicate address detection on this private link: the address is usable at once.
echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
ip addr add "$ADDR" dev eth0
ip -f inet6 addr add "$ADDR6" dev eth0
ip link set eth0 up
ip route add default via "$GW"
ip -f inet6 route add default via "$GW6"
nc -ll -p {SINK_PORT} -e /bin/tcps-sink &
nc -ll -p {SOURCE_PORT} -e /bin/tcps-source &
stty -echo 2>/dev/null
echo "{READY_MARK} addr=$ADDR gw=$GW addr6=$ADDR6 gw6=$GW6"
while true; do
    while read -r cmd a b c; do
        case "$cmd" in
            connect) /bin/tcps-connect "$a" "$b" "$c" ;;
            counters)
                echo COUNTERS-BEGIN
                cat /proc/net/snmp /proc/net/netstat
                echo COUNTERS-END ;;
            poweroff) poweroff -f ;;
            '') ;;
            *) echo "VM-ERROR unknown command $cmd" ;;
        esac
    done
    sleep 1
done
"""
    # ``seq 1 N`` has at least N bytes (every number carries a newline), so
    # the first N bytes are always there; pattern() in Python makes the same.
    gen = """#!/bin/sh
seq 1 "$1" | head -c "$1"
"""
    count = """#!/bin/sh
# stdin -> "BYTES SHA256" (kept in RAM; fine for the few MB the tests send)
cat > /tmp/count.$$
n=$(wc -c < /tmp/count.$$)
h=$(sha256sum < /tmp/count.$$)
rm -f /tmp/count.$$
echo "$n ${h%% *}"
"""
    sink = """#!/bin/sh
# nc -e: stdin and stdout are the connection
set -- $(/bin/tcps-count)
echo "$1 $2"
echo "SINK bytes=$1 sha256=$2" > /dev/console
"""
    source = """#!/bin/sh
read -r n
case "$n" in ''|*[!0-9]*) echo "VM-ERROR source: bad request '$n'" > /dev/console; exit 1;; esac
/bin/tcps-gen "$n"
echo "SOURCE bytes=$n" > /dev/console
"""
    connect = """#!/bin/sh
# connect HOST PORT N: send pattern(N), half-close, count what comes back
/bin/tcps-gen "$3" | timeout 100 nc "$1" "$2" > /tmp/connect.out
rc=$?
set -- $(/bin/tcps-count < /tmp/connect.out)
rm -f /tmp/connect.out
echo "CONNECT-DONE rc=$rc bytes=$1 sha256=$2"
"""
    return {"init": init, "bin/tcps-gen": gen, "bin/tcps-count": count, "bin/tcps-sink": sink,
            "bin/tcps-source": source, "bin/tcps-connect": connect}


def cache_dir() -> Path:
    base = os.environ.get("TCPSTACK_VM_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "tcpstack" / "vm"


def build_initramfs(kernel: GuestKernel, directory: Path | None = None) -> Path:
    """Build (or reuse from the cache) the guest's gzip'd cpio; returns its path."""
    directory = directory or cache_dir()
    busybox = find_static_busybox()
    modules = module_load_order(kernel.modules_dir, GUEST_MODULES)
    names = [_module_name(str(m)) for m in modules]
    scripts = _guest_scripts(names)
    key = hashlib.sha256()
    key.update(f"{INITRAMFS_FORMAT} {kernel.version} {busybox.stat().st_size} "
               f"{busybox.stat().st_mtime_ns}".encode())
    for name in sorted(scripts):
        key.update(name.encode() + scripts[name].encode())
    target = directory / f"initramfs-{kernel.version}-{key.hexdigest()[:12]}.cpio.gz"
    if target.is_file():
        return target

    cpio = CpioWriter()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        cpio.directory(d)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            cpio.symlink(f"bin/{applet}", "busybox")
    for rel, name in zip(modules, names, strict=True):
        source = kernel.modules_dir / rel  # modules.dep names the file as installed
        if not source.is_file():
            raise VmPeerError(f"module file {source} is missing")
        cpio.file(f"lib/modules/{name}.ko", _read_module(source))
    for name, text in scripts.items():
        cpio.file(name, text.encode(), 0o755)

    directory.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(gzip.compress(cpio.finish(), compresslevel=6))
    tmp.replace(target)
    return target


# ---------------------------------------------------------------------- namespace


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(("-n", netns) if netns else ()), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise VmPeerError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")


class Namespace:
    """A network namespace this code creates and always deletes (pyroute2 netns)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"tcps-vm-{uuid.uuid4().hex[:8]}"
        self.created = False

    def __enter__(self) -> Namespace:
        from pyroute2 import netns

        if self.name in netns.listnetns():
            raise VmPeerError(f"network namespace {self.name} already exists")
        netns.create(self.name)
        self.created = True
        _ip("link", "set", "lo", "up", netns=self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        if self.created:
            from pyroute2 import netns

            with contextlib.suppress(OSError):
                netns.remove(self.name)
            self.created = False

    def exec(self, *argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv],
                              capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]

    def enable_forwarding(self) -> None:
        """Forwarding of both families in this namespace only (a process inside it
        writes its own sysctls)."""
        result = self.exec("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward && "
                                       "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding && "
                                       "cat /proc/sys/net/ipv4/ip_forward "
                                       "/proc/sys/net/ipv6/conf/all/forwarding")
        if result.returncode != 0 or result.stdout.split() != ["1", "1"]:
            raise VmPeerError(f"cannot enable forwarding in {self.name}: {result.stderr.strip()}")

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block with this thread inside the namespace (sockets made here stay in it)."""
        from pyroute2 import netns

        netns.pushns(self.name)
        try:
            yield
        finally:
            netns.popns()


# ---------------------------------------------------------------------------- VM


@dataclasses.dataclass(frozen=True)
class GuestTransfer:
    """What the guest saw of one connection: bytes and sha256 of the data it received."""

    nbytes: int
    sha256: str
    rc: int = 0


def accel_choice() -> str:
    """``tcg`` unless TCPSTACK_VM_ACCEL says ``kvm``.

    On the machines this was built on KVM is present but the guest hangs in
    early boot, so TCG (software emulation, ~6 s to boot) is the default;
    TCPSTACK_VM_ACCEL=kvm uses KVM where it works.
    """
    choice = os.environ.get("TCPSTACK_VM_ACCEL", "tcg")
    if choice not in ("tcg", "kvm"):
        raise VmPeerError(f"TCPSTACK_VM_ACCEL must be tcg or kvm, not {choice!r}")
    if choice == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise VmPeerError("TCPSTACK_VM_ACCEL=kvm but /dev/kvm is not usable")
    return choice


class VmPeer:
    """A Linux guest on a TAP device inside ``netns``; its console is a line log.

    Use as a context manager; ``stop()`` always kills qemu and removes the
    TAP device.
    """

    def __init__(self, netns: str, *, tap: str = "tcpsvm0", host_addr: str = "10.8.0.1",
                 guest_addr: str = "10.8.0.2", prefix_len: int = 24, memory_mb: int = 256,
                 console_log: Path | None = None, host_addr6: str = "fd00:9::1",
                 guest_addr6: str = "fd00:9::2") -> None:
        self.netns = netns
        self.tap = tap
        self.host_addr = host_addr
        self.guest_addr = guest_addr
        self.host_addr6 = host_addr6         # the TAP's IPv6 side (/64), the guest's gateway
        self.guest_addr6 = guest_addr6
        self.prefix_len = prefix_len
        self.memory_mb = memory_mb
        self.console_log = console_log
        self.boot_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._cursor = 0
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._tap_created = False

    # -- lifecycle

    def __enter__(self) -> VmPeer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def qemu_command(self, kernel: GuestKernel, initramfs: Path, accel: str) -> list[str]:
        qemu = shutil.which("qemu-system-x86_64")
        if not qemu:
            raise VmPeerError("qemu-system-x86_64 is not installed "
                              "(apt-get install qemu-system-x86)")
        append = (f"console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init "
                  f"tcps.addr={self.guest_addr}/{self.prefix_len} tcps.gw={self.host_addr} "
                  f"tcps.addr6={self.guest_addr6}/64 tcps.gw6={self.host_addr6}")
        return [qemu, "-accel", accel, "-m", str(self.memory_mb), "-smp", "1",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", "stdio", "-monitor", "none",
                "-kernel", str(kernel.vmlinuz), "-initrd", str(initramfs), "-append", append,
                "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
                "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:74:63:70"]

    def start(self, timeout: float = 90.0) -> None:
        kernel = find_guest_kernel()
        initramfs = build_initramfs(kernel)
        accel = accel_choice()
        _ip("tuntap", "add", "dev", self.tap, "mode", "tap", netns=self.netns)
        self._tap_created = True
        _ip("addr", "add", f"{self.host_addr}/{self.prefix_len}", "dev", self.tap, netns=self.netns)
        _ip("-6", "addr", "add", f"{self.host_addr6}/64", "dev", self.tap, "nodad",
            netns=self.netns)
        _ip("link", "set", self.tap, "up", netns=self.netns)
        started = time.monotonic()
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *self.qemu_command(kernel, initramfs, accel)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read_console, name="vm-console", daemon=True)
        self._reader.start()
        self.wait_for(READY_MARK, timeout)
        self.boot_seconds = time.monotonic() - started

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._tap_created:
            with contextlib.suppress(VmPeerError):
                _ip("link", "del", self.tap, netns=self.netns)
            self._tap_created = False

    # -- console

    def _read_console(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        log = self.console_log.open("a") if self.console_log else None
        try:
            for raw in self._proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
                if log:
                    log.write(line + "\n")
                    log.flush()
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        finally:
            if log:
                log.close()
            with self._cond:
                self._lines.append("<qemu exited>")
                self._cond.notify_all()

    @property
    def console(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def wait_for(self, regex: str, timeout: float) -> re.Match[str]:
        """The first console line after the last match that matches ``regex``."""
        compiled = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._cursor < len(self._lines):
                    line = self._lines[self._cursor]
                    self._cursor += 1
                    if line.startswith("VM-ERROR") or line.startswith("Kernel panic"):
                        raise VmPeerError(f"guest: {line}\n--- console ---\n{self._tail()}")
                    match = compiled.search(line)
                    if match:
                        return match
                if self._proc is None or self._proc.poll() is not None:
                    raise VmPeerError(f"qemu exited before {regex!r}\n--- console ---\n"
                                      f"{self._tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VmPeerError(f"no {regex!r} on the guest console within {timeout:.0f} s"
                                      f"\n--- console ---\n{self._tail()}")
                self._cond.wait(min(left, 0.5))

    def follow_console(self) -> Iterator[str]:
        """Every console line from now on, until qemu exits."""
        while True:
            with self._cond:
                while self._cursor >= len(self._lines):
                    if self._proc is None or self._proc.poll() is not None:
                        return
                    self._cond.wait(0.5)
                line = self._lines[self._cursor]
                self._cursor += 1
            yield line

    def _tail(self, n: int = 40) -> str:
        return "\n".join(self._lines[-n:])

    def send_command(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise VmPeerError("the VM is not running")
        self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()

    # -- what tests ask of the guest

    def tcp_counters(self, timeout: float = 30.0) -> dict[str, int]:
        """The guest's Tcp: (RFC 1213 MIB) and TcpExt: counters, e.g. ``Tcp.OutRsts``."""
        self.send_command("counters")
        self.wait_for("^COUNTERS-BEGIN$", timeout)
        rows: list[str] = []
        while True:
            line = self.wait_for(".", timeout).string
            if line == "COUNTERS-END":
                break
            rows.append(line)
        return parse_proc_counters(rows)

    def sink_result(self, timeout: float = 60.0) -> GuestTransfer:
        match = self.wait_for(r"^SINK bytes=(\d+) sha256=([0-9a-f]{64})", timeout)
        return GuestTransfer(int(match.group(1)), match.group(2))

    def source_done(self, timeout: float = 60.0) -> int:
        return int(self.wait_for(r"^SOURCE bytes=(\d+)", timeout).group(1))

    def start_guest_connect(self, host: str, port: int, nbytes: int) -> None:
        """The guest connects to ``host:port`` and sends ``pattern(nbytes)``.

        Its report comes from guest_connect_result().
        """
        self.send_command(f"connect {host} {port} {nbytes}")

    def guest_connect_result(self, timeout: float = 90.0) -> GuestTransfer:
        match = self.wait_for(r"^CONNECT-DONE rc=(\d+) bytes=(\d+) sha256=([0-9a-f]{64})",
                              timeout)
        return GuestTransfer(int(match.group(2)), match.group(3), rc=int(match.group(1)))


def parse_proc_counters(lines: Iterable[str]) -> dict[str, int]:
    """``/proc/net/snmp``-style header/value line pairs -> {"Tcp.OutRsts": 0, ...}."""
    counters: dict[str, int] = {}
    header: dict[str, list[str]] = {}
    for line in lines:
        prefix, _, rest = line.partition(":")
        fields = rest.split()
        if not fields:
            continue
        if prefix in header:
            for name, value in zip(header.pop(prefix), fields, strict=False):
                with contextlib.suppress(ValueError):
                    counters[f"{prefix}.{name}"] = int(value)
        else:
            header[prefix] = fields
    return counters


def counter_delta(before: dict[str, int], after: dict[str, int], names: Iterable[str]
                  ) -> dict[str, int]:
    return {name: after.get(name, 0) - before.get(name, 0) for name in names}


def main(argv: list[str] | None = None) -> int:
    """``tools/vm-peer``: build the initramfs, or boot the guest for manual use."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="tools/vm-peer",
        description="A second Linux kernel (qemu) as a TCP peer for tcpstack, on a TAP device "
                    "inside a network namespace.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or find in the cache) the guest initramfs; print its path")
    run = sub.add_parser("run", help="boot the guest and keep it running until Ctrl-C")
    run.add_argument("--netns", default="tcpstack-vm",
                     help="namespace to use (created and later deleted if missing; default "
                          "%(default)s); run `tcpstack connect --netns NAME 10.8.0.2 5001` in it")
    run.add_argument("--no-forward", action="store_true",
                     help="do not set ip_forward=1 inside the namespace")
    args = parser.parse_args(argv)
    try:
        kernel = find_guest_kernel()
        if args.command == "build":
            print(build_initramfs(kernel))
            return 0
        from pyroute2 import netns as pr_netns

        namespace = Namespace(args.netns)
        with contextlib.ExitStack() as stack:
            if args.netns not in pr_netns.listnetns():
                stack.enter_context(namespace)
            if not args.no_forward:
                namespace.enable_forwarding()
            vm = stack.enter_context(VmPeer(args.netns))
            print(f"guest {vm.guest_addr} up in namespace {args.netns} after "
                  f"{vm.boot_seconds:.1f} s: sink on port {SINK_PORT}, source on port "
                  f"{SOURCE_PORT}; Ctrl-C stops it", file=sys.stderr)
            with contextlib.suppress(KeyboardInterrupt):
                for line in vm.follow_console():
                    print(line, flush=True)
        return 0
    except VmPeerError as exc:
        print(f"vm-peer: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
