"""The TUN device: raw IPv4 packets to and from the kernel of one namespace.

``TunLink`` is the whole data path (``recv``/``send`` on one nonblocking fd);
``open_tun`` creates or attaches the device inside a namespace and configures
the kernel's side of it. The device is opened with ``IFF_TUN | IFF_NO_PI``:
every read is exactly one IP packet, every write injects one.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import struct

from tcpstack.errors import UserError
from tcpstack.link import netns as ns

TUN_DEVICE = "/dev/net/tun"

# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

READ_SIZE = 65536   # one read never returns more than one packet


class TunLink:
    """One attached TUN queue. Implements the ``Link`` protocol.

    ``recv`` returns ``None`` once the device is drained (EAGAIN); the runtime
    calls it until then on every wake-up. ``send`` never blocks: when the
    kernel cannot take a packet it is dropped and counted, TCP retransmits it.
    """

    tso = False

    def __init__(self, fd: int, name: str, mtu: int = 1500) -> None:
        self._fd = fd
        self.name = name
        self.mtu = mtu
        self.rx_packets = 0
        self.tx_packets = 0
        self.tx_dropped = 0

    def fileno(self) -> int:
        return self._fd

    def recv(self) -> bytes | None:
        try:
            packet = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return None
            raise
        self.rx_packets += 1
        return packet

    def send(self, packet: bytes) -> None:
        try:
            os.write(self._fd, packet)
        except (BlockingIOError, InterruptedError):
            self.tx_dropped += 1
            return
        except OSError as exc:
            # EIO: the interface is down; ENOBUFS/ENOMEM: the kernel is short.
            if exc.errno in (errno.EIO, errno.ENOBUFS, errno.ENOMEM, errno.EINVAL):
                self.tx_dropped += 1
                return
            raise
        self.tx_packets += 1

    def set_persist(self, persist: bool) -> None:
        """A persistent device outlives this process (``tcpstack lab up``)."""
        fcntl.ioctl(self._fd, TUNSETPERSIST, 1 if persist else 0)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TunLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _attach(ifname: str) -> int:
    """TUNSETIFF in the current thread's namespace: create or attach ``ifname``."""
    try:
        fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserError(f"{TUN_DEVICE} does not exist "
                        f"(load the tun module: modprobe tun)") from None
    except PermissionError:
        raise UserError(f"permission denied opening {TUN_DEVICE} (run as root)") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.EBUSY:
            raise UserError(f"TUN device {ifname} is in use by another process "
                            f"(choose another with --tun)") from None
        if exc.errno == errno.EPERM:
            raise UserError(f"not permitted to create TUN device {ifname} (run as root)") from None
        if exc.errno == errno.EINVAL:
            raise UserError(f"interface {ifname} exists and is not a TUN device "
                            f"opened without packet info") from None
        raise UserError(f"cannot open TUN device {ifname}: {exc.strerror}") from None
    return fd


def open_tun(netns_name: str, ifname: str = "tcps0",
             tun_addr: ipaddress.IPv4Interface | str = "10.7.0.1/24",
             mtu: int = 1500, persist: bool | None = None) -> TunLink:
    """Create or attach TUN ``ifname`` inside namespace ``netns_name`` and
    configure the kernel's end: ``tun_addr`` (kept if already there), MTU,
    IPv6 off, link and lo up. ``persist`` True/False sets TUNSETPERSIST;
    None leaves it as it is."""
    ns.validate_ifname(ifname)
    iface = ns.parse_interface(tun_addr) if isinstance(tun_addr, str) else tun_addr

    def inside() -> int:
        fd = _attach(ifname)
        try:
            if persist is not None:
                fcntl.ioctl(fd, TUNSETPERSIST, 1 if persist else 0)
            ns.configure_interface(ifname, iface, mtu)
        except BaseException:
            os.close(fd)
            raise
        return fd

    fd = ns.run_in_netns(netns_name, inside)
    return TunLink(fd, ifname, mtu)


def delete_tun(netns_name: str, ifname: str) -> bool:
    """Remove a (persistent) TUN device from a namespace. True if it existed."""
    ns.validate_ifname(ifname)

    def inside() -> bool:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                return False
            ipr.link("del", index=found[0])
            return True

    return ns.run_in_netns(netns_name, inside)
