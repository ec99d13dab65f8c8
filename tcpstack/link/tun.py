"""The TUN device: raw IPv4 packets to and from the kernel of one namespace.

``TunLink`` is the whole data path (``recv``/``send`` on one nonblocking fd);
``open_tun`` creates or attaches the device inside a namespace and configures
the kernel's side of it. The device is opened with ``IFF_TUN | IFF_NO_PI``:
every read is exactly one IP packet, every write injects one.

Offloads. With ``offload=True`` (the default of ``open_tun``) the device is
opened with ``IFF_VNET_HDR`` as well, the header size set to 10 bytes (the
plain ``struct virtio_net_hdr``; the 12-byte variant only adds
``num_buffers``, which a TUN never uses) and ``TUNSETOFFLOAD(TUN_F_CSUM |
TUN_F_TSO4 | TUN_F_TSO6)`` tells the kernel we complete checksums and
segment ourselves. Every read and write then starts with that header:

- writes (``send_offload``) carry ``NEEDS_CSUM`` (the TCP checksum field holds
  the pseudo-header sum, ``csum_start`` 20, ``csum_offset`` 16) and, for a
  payload larger than the MSS, ``GSO_TCPV4`` with ``gso_size`` = MSS: one
  write of up to 64 KB, segmented by the kernel;
- reads may be GSO packets of up to 64 KB whose TCP checksum is only the
  pseudo-header sum (``NEEDS_CSUM``): ``recv_offload`` says whether the
  checksum still has to be verified.

When the kernel refuses ``IFF_VNET_HDR`` or the offload flags, the device is
used without them (``TunLink.offload`` False) and ``open_tun`` says why in
``TunLink.offload_note``. Without offload the device's offload features are
switched off explicitly: a persistent device keeps the features an earlier
user set, and a reader without the header must never get GSO packets.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import select
import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tcpstack.errors import UserError
from tcpstack.link import netns as ns
from tcpstack.wire.checksum import fold, ones_sum

_T = TypeVar("_T")

TUN_DEVICE = "/dev/net/tun"

# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOFFLOAD = 0x400454D0
TUNGETIFF = 0x800454D2
TUNSETVNETHDRSZ = 0x400454D8
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
OFFLOAD_FLAGS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6

# linux/virtio_net.h: struct virtio_net_hdr, little-endian on the hosts we run on
# (a TUN uses the host's byte order unless TUNSETVNETBE/LE says otherwise).
VNET_HDR = struct.Struct("<BBHHHH")   # flags gso_type hdr_len gso_size csum_start csum_offset
VNET_HDR_LEN = VNET_HDR.size          # 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 0x01
VIRTIO_NET_HDR_F_DATA_VALID = 0x02
VIRTIO_NET_HDR_GSO_NONE = 0x00
VIRTIO_NET_HDR_GSO_TCPV4 = 0x01
VIRTIO_NET_HDR_GSO_TCPV6 = 0x04
CSUM_START = 20                       # the TCP header right after a 20-byte IPv4 header
CSUM_START6 = 40                      # ... or a 40-byte IPv6 header (we send no extensions)
CSUM_OFFSET = 16                      # the checksum field inside the TCP header

MAX_PACKET = 65535                    # the IPv4 total length field
READ_SIZE = VNET_HDR_LEN + MAX_PACKET + 1   # one read never returns more than one packet
# Largest TCP payload of one super-segment: the IPv4 total length less the
# IPv4 header and the largest TCP header (the same bound holds for IPv6,
# whose payload length excludes its 40-byte header: 65535 - 60).
TSO_MAX_PAYLOAD = MAX_PACKET - 20 - 60

# The kernel's queue of packets for us to read (the TUN's transmit queue, 500
# by default): when it is full the kernel drops. It must hold a whole receive
# window (4 MiB by default, core/config.py) of 1500-byte packets, or a kernel
# sender faster than we read loses segments to the queue: with 500, 5% of a
# bulk transfer without offloads was retransmitted.
TX_QUEUE_LENGTH = 4096

_PLAIN_HDR = bytes(VNET_HDR_LEN)      # no checksum to complete, not GSO
_NO_VERIFY = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID
_pack_hdr = VNET_HDR.pack


class TunLink:
    """One attached TUN queue. Implements the ``Link`` protocol.

    ``recv`` returns ``None`` once the device is drained (EAGAIN); the runtime
    reads until then on every wake-up, after the first packet asking
    ``readable()`` (a ``poll``) before a read that might fail. ``send`` never blocks: when the
    kernel cannot take a packet it is dropped and counted, TCP retransmits it.

    ``offload`` (and ``tso``) tell whether every read and write carries a
    ``virtio_net_hdr``; then ``send_offload``/``recv_offload`` are the fast
    path (``send``/``recv`` still take and give complete, checksummed packets).
    Counters: ``rx_packets``, ``tx_packets``, ``tx_dropped``, and
    ``rx_gso_packets``/``tx_gso_packets`` for packets larger than the MTU.
    """

    def __init__(self, fd: int, name: str, mtu: int = 1500, *, offload: bool = False,
                 offload_note: str | None = None) -> None:
        self._fd = fd
        self.name = name
        self.mtu = mtu
        self.offload = offload
        self.tso = offload
        self.vnet_hdr_len = VNET_HDR_LEN if offload else 0
        self.offload_note = offload_note
        self.rx_packets = 0
        self.tx_packets = 0
        self.tx_dropped = 0
        self.rx_gso_packets = 0
        self.tx_gso_packets = 0
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self._fd

    def readable(self) -> bool:
        """Whether a packet is waiting, without reading it: one ``poll(2)``,
        cheaper than a read that fails with EAGAIN."""
        return bool(self._poll.poll(0))

    # -- receive ---------------------------------------------------------------

    def _read(self) -> int:
        """One packet into the buffer; its length, or -1 when none is waiting."""
        n = _unless_empty(os.readv, self._fd, (self._buf,))
        return -1 if n is None else n

    def recv_view(self) -> tuple[memoryview, bool] | None:
        """Like ``recv_offload`` but without a copy.

        With offloads the packet is a read-only view of the ``bytes`` the read
        returned (nothing reuses it), so whoever parses it may keep pieces of
        it: a 64 KB GSO payload is never copied. Without, packets are at most
        the MTU and copying a payload costs less than a fresh 64 KB read
        buffer each time: the view is of the link's read buffer, writable and
        valid only until the next read.
        """
        hlen = self.vnet_hdr_len
        if not hlen:
            n = self._read()
            if n < 0:
                return None
            self.rx_packets += 1
            return self._view[:n], True
        data = _unless_empty(os.read, self._fd, READ_SIZE)
        if data is None:
            return None
        self.rx_packets += 1
        if len(data) > self.mtu + hlen:
            self.rx_gso_packets += 1
        return memoryview(data)[hlen:], not data[0] & _NO_VERIFY

    def recv_offload(self) -> tuple[bytes, bool] | None:
        """The next packet and whether its TCP checksum must be verified.

        False when the kernel marked it ``NEEDS_CSUM`` (the field holds only
        the pseudo-header sum) or ``DATA_VALID``. Without offload always True.
        """
        n = self._read()
        if n < 0:
            return None
        self.rx_packets += 1
        hlen = self.vnet_hdr_len
        if not hlen:
            return bytes(self._view[:n]), True
        if n > self.mtu + hlen:
            self.rx_gso_packets += 1
        return bytes(self._view[hlen:n]), not self._buf[0] & _NO_VERIFY

    def recv(self) -> bytes | None:
        """The next complete IPv4 packet (a partial checksum is completed here)."""
        got = self.recv_offload()
        if got is None:
            return None
        packet, verified = got
        if verified or not self._buf[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            return bytes(packet)
        _, _, _, _, start, offset = VNET_HDR.unpack_from(self._buf, 0)
        where = start + offset
        if where + 2 > len(packet):
            return bytes(packet)
        # The field holds the pseudo-header sum; the checksum covers it and
        # everything from csum_start on (RFC 1071 complement of the sum).
        data = bytearray(packet)
        csum = 0xFFFF - fold(ones_sum(data, start))
        data[where:where + 2] = csum.to_bytes(2, "big")
        return bytes(data)

    # -- send ------------------------------------------------------------------

    def send(self, packet: bytes) -> None:
        """Write one complete IPv4 packet (checksums filled in, at most the MTU)."""
        if self.vnet_hdr_len:
            self._write((_PLAIN_HDR, packet))
        else:
            self._write((packet,))

    def send_offload(self, parts: tuple[bytes, ...] | list[bytes], gso_size: int = 0,
                     header_length: int = 0) -> None:
        """Write one IPv4+TCP or IPv6+TCP packet given as pieces (e.g. headers, payload).

        Only when ``offload``: the TCP checksum field must hold the folded
        pseudo-header sum (``build_packet(..., offload=True)``); the kernel
        completes it. ``gso_size`` > 0 makes it a TSO super-segment whose
        payload the kernel cuts into ``gso_size`` pieces (TSO4 or TSO6 by the
        first piece's version nibble); ``header_length`` is then the IP + TCP
        header length. An IPv6 packet carries no extension headers.
        """
        ipv6 = parts[0][0] >> 4 == 6
        if gso_size:
            hdr = _pack_hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM,
                            VIRTIO_NET_HDR_GSO_TCPV6 if ipv6 else VIRTIO_NET_HDR_GSO_TCPV4,
                            header_length, gso_size, CSUM_START6 if ipv6 else CSUM_START,
                            CSUM_OFFSET)
            self.tx_gso_packets += 1
        else:
            hdr = _CSUM_HDR6 if ipv6 else _CSUM_HDR
        self._write((hdr, *parts))

    def _write(self, parts: tuple[bytes, ...]) -> None:
        try:
            os.writev(self._fd, parts)
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
            self._poll.unregister(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TunLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CSUM_HDR = _pack_hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, 0, 0,
                      CSUM_START, CSUM_OFFSET)
_CSUM_HDR6 = _pack_hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, 0, 0,
                       CSUM_START6, CSUM_OFFSET)


def _unless_empty(read: Callable[..., _T], *args: Any) -> _T | None:
    """``read(*args)`` on the non-blocking device; None when no packet waits
    (EAGAIN) or a signal interrupted the read (EINTR)."""
    try:
        return read(*args)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EINTR):
            return None
        raise


def _open_device() -> int:
    try:
        return os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserError(f"{TUN_DEVICE} does not exist "
                        f"(load the tun module: modprobe tun)") from None
    except PermissionError:
        raise UserError(f"permission denied opening {TUN_DEVICE} (run as root)") from None


def _set_iff(fd: int, ifname: str, flags: int) -> None:
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), flags))
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise UserError(f"TUN device {ifname} is in use by another process "
                            f"(choose another with --tun)") from None
        if exc.errno == errno.EPERM:
            raise UserError(f"not permitted to create TUN device {ifname} (run as root)") from None
        if exc.errno == errno.EINVAL:
            raise UserError(f"interface {ifname} exists and is not a TUN device "
                            f"opened without packet info") from None
        raise UserError(f"cannot open TUN device {ifname}: {exc.strerror}") from None


def device_flags(fd: int) -> int:
    """TUNGETIFF: the flags the device was attached with (``IFF_*``)."""
    raw = fcntl.ioctl(fd, TUNGETIFF, bytes(40))
    return struct.unpack_from("16sH", raw)[1]


def _attach(ifname: str, offload: bool) -> tuple[int, bool, str | None]:
    """TUNSETIFF in the current thread's namespace: create or attach ``ifname``.

    Returns the fd, whether offloads are on, and why not when they were asked
    for and refused.
    """
    note = None
    if offload:
        fd = _open_device()
        try:
            _set_iff(fd, ifname, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
        except UserError as exc:
            os.close(fd)
            if "in use" in str(exc) or "not permitted" in str(exc):
                raise
            note = f"offloads off: {ifname} refused IFF_VNET_HDR ({exc})"
        else:
            try:
                if not device_flags(fd) & IFF_VNET_HDR:
                    raise OSError(errno.EINVAL, "attached without IFF_VNET_HDR")
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
                fcntl.ioctl(fd, TUNSETOFFLOAD, OFFLOAD_FLAGS)
            except OSError as exc:
                # Some kernels/devices refuse: reopen plainly rather than run
                # with a header whose offloads the kernel does not honour.
                os.close(fd)
                note = (f"offloads off: the kernel refused checksum/TSO offload on {ifname} "
                        f"({exc.strerror or exc})")
            else:
                return fd, True, None
    fd = _open_device()
    try:
        _set_iff(fd, ifname, IFF_TUN | IFF_NO_PI)
        # A persistent device keeps the offload features of its last user:
        # without the header we must never be handed GSO or partial-checksum
        # packets.
        try:
            fcntl.ioctl(fd, TUNSETOFFLOAD, 0)
        except OSError:
            pass   # a kernel without TUNSETOFFLOAD offers no offloads either
    except BaseException:
        os.close(fd)
        raise
    return fd, False, note


def open_tun(netns_name: str, ifname: str = "tcps0",
             tun_addr: ns.Interface | str | Sequence[ns.Interface | str] = "10.7.0.1/24",
             mtu: int = 1500, persist: bool | None = None,
             offload: bool = True) -> TunLink:
    """Create or attach TUN ``ifname`` inside namespace ``netns_name`` and configure the kernel's
    end: ``tun_addr`` (one or one per family, kept if already there), MTU, queue length
    ``TX_QUEUE_LENGTH``, IPv6 off unless an IPv6 address is given, link and lo up.
    ``persist`` True/False sets TUNSETPERSIST; None leaves it as it is.
    ``offload`` asks for virtio-net headers with checksum and TSO offload; the link's
    ``offload`` tells whether it got them and ``offload_note`` why not."""
    ns.validate_ifname(ifname)
    items = [tun_addr] if isinstance(tun_addr, str | ipaddress.IPv4Interface
                                      | ipaddress.IPv6Interface) else list(tun_addr)
    iface = [ns.parse_interface(i) if isinstance(i, str) else i for i in items]

    def inside() -> tuple[int, bool, str | None]:
        fd, on, note = _attach(ifname, offload)
        try:
            if persist is not None:
                fcntl.ioctl(fd, TUNSETPERSIST, 1 if persist else 0)
            ns.configure_interface(ifname, iface, mtu, TX_QUEUE_LENGTH)
        except BaseException:
            os.close(fd)
            raise
        return fd, on, note

    fd, on, note = ns.run_in_netns(netns_name, inside)
    return TunLink(fd, ifname, mtu, offload=on, offload_note=note)


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
