"""Classic pcap files: write what tcpstack sends and receives, read any capture.

Writing produces classic pcap (magic 0xa1b2c3d4, version 2.4), link type 101
(raw IP) by default, so tcpdump, Wireshark and tcptrace read it. Reading
accepts both byte orders, microsecond and nanosecond timestamps, and the
link types a TCP/IP capture usually comes in; it yields the IPv4 and IPv6
packets and skips frames of other protocols (ARP...). pcapng is refused with
the command that converts it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from types import TracebackType
from typing import BinaryIO

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0             # BSD loopback: address family in the writer's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_LOOP = 108           # OpenBSD loopback: address family in network byte order
LINKTYPE_RAW = 101            # raw IP, version in the first nibble
LINKTYPE_LINUX_SLL = 113      # Linux "cooked" capture v1 (tcpdump -i any)
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276     # Linux "cooked" capture v2
SUPPORTED_LINKTYPES = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LINUX_SLL: "Linux cooked v1",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2",
}

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
MAGIC_PCAPNG = 0x0A0D0D0A
VERSION = (2, 4)
DEFAULT_SNAPLEN = 262144
_MAX_RECORD = 1 << 24         # larger "captured length" means a corrupt file

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPES_IP = (ETHERTYPE_IPV4, ETHERTYPE_IPV6)
AF_INET = 2                   # the same on every BSD and Linux
# AF_INET6 differs: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30.
_AF_IP = (AF_INET, 10, 24, 28, 30)
_VLAN_ETHERTYPES = (0x8100, 0x88A8, 0x9100)   # 802.1Q, 802.1ad (QinQ), old QinQ

_FILE_HEADER = struct.Struct("IHHiIII")       # byte order prefixed when used
_RECORD_HEADER = struct.Struct("IIII")


class PcapError(ValueError):
    """A file that is not a readable classic pcap. The message is one line."""


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One IP packet from a capture. ``data`` starts at the IPv4 or IPv6 header.

    ``linktype`` is the file's link type; ``orig_len`` the packet's length on
    the wire (``data`` is shorter when the capture was truncated by snaplen).
    """

    ts: float
    linktype: int
    data: bytes
    orig_len: int = 0


# ----- writing -------------------------------------------------------------------

class PcapWriter:
    """Write packets to a classic pcap file.

    ``target`` is a path (the file is created, and closed by ``close()``) or
    an open binary file (flushed but left open by ``close()``).
    ``nanosecond=True`` writes the nanosecond-resolution variant.
    """

    def __init__(self, target: str | PathLike[str] | BinaryIO, linktype: int = LINKTYPE_RAW,
                 snaplen: int = DEFAULT_SNAPLEN, *, nanosecond: bool = False) -> None:
        if not 0 < snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snaplen must be between 1 and 2**32-1, not {snaplen}")
        self.linktype = linktype
        self.snaplen = snaplen
        self._scale = 1_000_000_000 if nanosecond else 1_000_000
        if isinstance(target, (str, PathLike)):
            self._file: BinaryIO = open(target, "wb")  # noqa: SIM115 -- closed by close()
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self._closed = False
        magic = MAGIC_NANO if nanosecond else MAGIC_MICRO
        self._file.write(struct.pack("<" + _FILE_HEADER.format, magic, *VERSION, 0, 0,
                                     snaplen, linktype))

    def write(self, packet: bytes | bytearray | memoryview, ts: float) -> None:
        """Append one packet captured at ``ts`` (seconds since the epoch)."""
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        if not math.isfinite(ts) or ts < 0:
            raise ValueError(f"pcap timestamps must be finite and >= 0, not {ts!r}")
        seconds = int(ts)
        fraction = round((ts - seconds) * self._scale)
        if fraction >= self._scale:        # 0.9999999 rounds up to the next second
            seconds += 1
            fraction -= self._scale
        length = len(packet)
        captured = min(length, self.snaplen)
        self._file.write(struct.pack("<IIII", seconds, fraction, captured, length))
        self._file.write(packet if captured == length else bytes(packet[:captured]))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_file:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# ----- reading -------------------------------------------------------------------

def _ip_from_ethernet(frame: bytes) -> bytes | None:
    offset = 12
    while True:
        if len(frame) < offset + 2:
            return None
        ethertype = int.from_bytes(frame[offset:offset + 2], "big")
        if ethertype in _VLAN_ETHERTYPES:      # 802.1Q tag: TPID, TCI, then the real type
            offset += 4
            continue
        return frame[offset + 2:] if ethertype in _ETHERTYPES_IP else None


def _ip_from_sll(frame: bytes) -> bytes | None:
    # packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
    if len(frame) < 16 or int.from_bytes(frame[14:16], "big") not in _ETHERTYPES_IP:
        return None
    return frame[16:]


def _ip_from_sll2(frame: bytes) -> bytes | None:
    # protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) address length(1) address(8)
    if len(frame) < 20 or int.from_bytes(frame[0:2], "big") not in _ETHERTYPES_IP:
        return None
    return frame[20:]


def _ip_from_null(frame: bytes) -> bytes | None:
    if len(frame) < 4 or not (int.from_bytes(frame[:4], "little") in _AF_IP
                              or int.from_bytes(frame[:4], "big") in _AF_IP):
        return None
    return frame[4:]


def _ip_from_loop(frame: bytes) -> bytes | None:
    if len(frame) < 4 or int.from_bytes(frame[:4], "big") not in _AF_IP:
        return None
    return frame[4:]


def _ip_from_raw(frame: bytes) -> bytes | None:
    return frame if frame and frame[0] >> 4 in (4, 6) else None


def _ip_as_is(frame: bytes) -> bytes | None:
    return frame


_DECAPSULATE = {
    LINKTYPE_NULL: _ip_from_null,
    LINKTYPE_LOOP: _ip_from_loop,
    LINKTYPE_ETHERNET: _ip_from_ethernet,
    LINKTYPE_RAW: _ip_from_raw,
    LINKTYPE_LINUX_SLL: _ip_from_sll,
    LINKTYPE_IPV4: _ip_as_is,
    LINKTYPE_IPV6: _ip_as_is,
    LINKTYPE_LINUX_SLL2: _ip_from_sll2,
}


class PcapReader:
    """Iterate over the IP packets (both families) of a classic pcap file, streaming.

    ``source`` is a path (opened here, closed when iteration ends or by
    ``close()``) or an open binary file. The file header is checked at once;
    ``skipped`` counts frames that were not IP (ARP...). Raises
    ``PcapError`` for anything it cannot read, with a one-line message.
    """

    def __init__(self, source: str | PathLike[str] | BinaryIO) -> None:
        self.skipped = 0
        if isinstance(source, (str, PathLike)):
            self.name = str(source)
            try:
                self._file: BinaryIO = open(source, "rb")  # noqa: SIM115 -- closed by close()
            except OSError as exc:
                raise PcapError(f"{self.name}: cannot read: {exc.strerror or exc}") from None
            self._owns_file = True
        else:
            self.name = str(getattr(source, "name", "<pcap>"))
            self._file = source
            self._owns_file = False
        try:
            self._read_file_header()
        except BaseException:
            self.close()
            raise

    def _fail(self, message: str) -> PcapError:
        return PcapError(f"{self.name}: {message}")

    def _read(self, size: int) -> bytes:
        try:
            return self._file.read(size)
        except OSError as exc:
            raise self._fail(f"cannot read: {exc.strerror or exc}") from None

    def _read_file_header(self) -> None:
        head = self._read(_FILE_HEADER.size)
        if len(head) < 4:
            raise self._fail("too short to be a pcap file")
        if int.from_bytes(head[:4], "little") == MAGIC_PCAPNG:
            raise self._fail("pcapng is not supported; convert with: editcap -F pcap in out")
        little, big = int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")
        if little in (MAGIC_MICRO, MAGIC_NANO):
            order, magic = "<", little
        elif big in (MAGIC_MICRO, MAGIC_NANO):
            order, magic = ">", big
        else:
            raise self._fail(f"not a pcap file (first bytes 0x{head[:4].hex()})")
        if len(head) < _FILE_HEADER.size:
            raise self._fail("pcap file header is cut short")
        _magic, major, minor, _zone, _sigfigs, self.snaplen, linktype = struct.unpack(
            order + _FILE_HEADER.format, head)
        if major != 2:
            raise self._fail(f"pcap version {major}.{minor} is not supported (only 2.x)")
        self.linktype = linktype & 0x0FFFFFFF    # the upper bits carry FCS information
        if self.linktype not in SUPPORTED_LINKTYPES:
            known = ", ".join(f"{n} ({name})" for n, name in SUPPORTED_LINKTYPES.items())
            raise self._fail(f"link type {self.linktype} is not supported (supported: {known})")
        self._record = struct.Struct(order + _RECORD_HEADER.format)
        self.nanosecond = magic == MAGIC_NANO
        self._divisor = 1e9 if self.nanosecond else 1e6

    def __iter__(self) -> Iterator[PcapRecord]:
        try:
            yield from self._records()
        finally:
            self.close()

    def _records(self) -> Iterator[PcapRecord]:
        record = self._record
        decapsulate = _DECAPSULATE[self.linktype]
        index = 0
        while True:
            head = self._read(record.size)
            if not head:
                return
            index += 1
            if len(head) < record.size:
                raise self._fail(f"record {index} header is cut short "
                                 "(capture ended mid-write?)")
            seconds, fraction, captured, orig_len = record.unpack(head)
            if captured > _MAX_RECORD:
                raise self._fail(f"record {index} claims {captured} bytes; the file is corrupt")
            frame = self._read(captured)
            if len(frame) < captured:
                raise self._fail(f"record {index} is cut short: {captured} bytes announced, "
                                 f"{len(frame)} present (capture ended mid-write?)")
            packet = decapsulate(frame)
            if packet is None:
                self.skipped += 1
                continue
            yield PcapRecord(seconds + fraction / self._divisor, self.linktype, packet,
                             max(0, orig_len - (captured - len(packet))))

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_pcap(source: str | PathLike[str] | BinaryIO) -> Iterator[PcapRecord]:
    """The IP packets of a classic pcap file, in order (see ``PcapReader``).

    The file header is checked by this call, before the first record.
    """
    return iter(PcapReader(source))
