"""Frames on the attacker's veth: building them fast, sending them in bursts, reading replies.

The attacker writes whole Ethernet frames into its end of the veth with an
AF_PACKET socket (no routing, no neighbour lookup: the router's MAC is
fixed by the topology) and reads every frame that arrives there with the
same socket (``ETH_P_ALL``: it sees a frame before the nftables ingress rule
drops it). ``Burst`` sends many pre-built frames with one ``sendmmsg(2)``
per batch, through ctypes: Python's socket module has no ``sendmmsg``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import random
import socket
import struct
from collections.abc import Sequence
from typing import NamedTuple

from tcpstack.attack import topology as topo
from tcpstack.wire.packet import build_packet
from tcpstack.wire.tcp import SYN, TcpSegment

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
TAP_BUFFER = 64 << 20
BATCH = 256                 # frames per sendmmsg

ETH_HEADER = (bytes.fromhex(topo.ROUTER_MAC.replace(":", ""))
              + bytes.fromhex(topo.ATTACKER_MAC.replace(":", "")) + b"\x08\x00")


def ip_int(addr: str) -> int:
    return int.from_bytes(socket.inet_aton(addr), "big")


def frame(src: str, dst: str, seg: TcpSegment) -> bytes:
    """An Ethernet frame to the router carrying ``seg`` (both checksums computed)."""
    return ETH_HEADER + build_packet(src, dst, seg)


# -- the tap: one AF_PACKET socket for sending and receiving -----------------------------

def open_tap(ifname: str = topo.ATTACKER_IF) -> socket.socket:
    """A raw packet socket on ``ifname`` (in the calling thread's namespace): sends
    whole frames, receives every frame that arrives (not the ones we send)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, TAP_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)
        sock.bind((ifname, ETH_P_ALL))
    except BaseException:
        sock.close()
        raise
    return sock


def tap_drops(sock: socket.socket) -> int:
    """Frames the kernel could not queue to the tap since the last call (it resets)."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    _, drops = struct.unpack("II", raw)
    return drops


# -- the router's link to the target ----------------------------------------------------

class LinkCounter:
    """``tx_packets`` and ``tx_drop`` of the router's device towards the target, read
    from ``/proc/net/dev`` of the router's namespace (opened there once; every
    read regenerates it). For a TUN ``tx_packets`` counts what the program has
    *read*, so ``sent - (tx_packets + tx_drop)`` is what waits in its queue; a
    veth counts at transmission, where the kernel target does its work at once."""

    def __init__(self, netns: str, ifname: str) -> None:
        from tcpstack.link import netns as ns

        self.ifname = ifname
        self.fd = ns.run_in_netns(netns, os.open, "/proc/thread-self/net/dev", os.O_RDONLY)

    def read(self) -> tuple[int, int]:
        text = os.pread(self.fd, 1 << 16, 0).decode("ascii", "replace")
        for line in text.splitlines()[2:]:
            name, _, rest = line.partition(":")
            if name.strip() == self.ifname:
                fields = rest.split()
                return int(fields[9]), int(fields[11])
        return 0, 0

    def gone(self) -> int:
        """Packets that left the queue so far: taken by the target or dropped."""
        tx, dropped = self.read()
        return tx + dropped

    def close(self) -> None:
        os.close(self.fd)


# -- sendmmsg -------------------------------------------------------------------------

class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_IoVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int
_MMSG_SIZE = ctypes.sizeof(_MMsgHdr)
_IOV = struct.Struct("PN")                                        # iov_base, iov_len
# msghdr: msg_name NULL, namelen 0, msg_iov, msg_iovlen (the rest zero).
_IOV_AT, _IOVLEN_AT = _MsgHdr.msg_iov.offset, _MsgHdr.msg_iovlen.offset
_MSG = struct.Struct(f"{_IOV_AT}xP{_IOVLEN_AT - _IOV_AT - struct.calcsize('P')}xN")


class Burst:
    """Pre-built frames ready for ``sendmmsg``: one buffer, one iovec and one
    message header per frame, built once; ``send(fd, start, count)`` writes
    frames ``start .. start+count-1`` with as few system calls as it can."""

    def __init__(self, frames: Sequence[bytes]) -> None:
        self.count = len(frames)
        blob = b"".join(frames)
        self._buffer = ctypes.create_string_buffer(blob, max(1, len(blob)))
        n = max(1, self.count)
        # The arrays are filled with struct (one pack per frame), not field by field.
        self._iov = bytearray(ctypes.sizeof(_IoVec) * n)
        self._msgs = bytearray(_MMSG_SIZE * n)
        iov_array = (ctypes.c_char * len(self._iov)).from_buffer(self._iov)
        msg_array = (ctypes.c_char * len(self._msgs)).from_buffer(self._msgs)
        base, iov_base = ctypes.addressof(self._buffer), ctypes.addressof(iov_array)
        iov_size = ctypes.sizeof(_IoVec)
        offset = 0
        pack_iov, pack_msg = _IOV.pack_into, _MSG.pack_into
        for i, f in enumerate(frames):
            pack_iov(self._iov, i * iov_size, base + offset, len(f))
            pack_msg(self._msgs, i * _MMSG_SIZE, iov_base + i * iov_size, 1)
            offset += len(f)
        self._keep = (iov_array, msg_array)
        self._msgs_base = ctypes.addressof(msg_array)
        self.failed = 0          # frames the kernel refused (ENOBUFS), not retried

    def send(self, fd: int, start: int = 0, count: int | None = None) -> int:
        """Send frames [start, start+count); returns how many the kernel took."""
        end = self.count if count is None else min(self.count, start + count)
        i = start
        retries = 0
        while i < end:
            n = min(BATCH, end - i)
            sent = _sendmmsg(fd, self._msgs_base + i * _MMSG_SIZE, n, 0)
            if sent > 0:
                i += sent
                retries = 0
                continue
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err in (errno.ENOBUFS, errno.EAGAIN) and retries < 100:
                retries += 1
                os.sched_yield()
                continue
            if err in (errno.ENOBUFS, errno.EAGAIN):
                self.failed += 1         # give this frame up, go on with the rest
                i += 1
                retries = 0
                continue
            raise OSError(err, f"sendmmsg: {os.strerror(err)}")
        return end - start


# -- spoofed SYNs, fast -------------------------------------------------------------------

# MSS 1460, NOP, window scale 7, SACK permitted, NOP, NOP: a client's SYN without timestamps.
SYN_OPTIONS = b"\x02\x04\x05\xb4\x01\x03\x03\x07\x04\x02\x01\x01"
_SYN_TCP_LEN = 20 + len(SYN_OPTIONS)
_SYN_IP_LEN = 20 + _SYN_TCP_LEN
SYN_FRAME_LEN = 14 + _SYN_IP_LEN
_IP_HEAD = struct.Struct("!BBHHHBBH4s4s")
_TCP_HEAD = struct.Struct("!HHIIHHHH")


def _fold(total: int) -> int:
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _words(data: bytes) -> int:
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def spoofed_syn_frames(count: int, dst: str, dst_port: int, seed: int) -> list[bytes]:
    """``count`` SYN frames from random addresses of 10.66.0.0 - 10.66.254.255 and
    random ports, with random sequence numbers; checksums computed incrementally
    from a template (the addresses, ports and sequence numbers are the only
    words that change)."""
    rng = random.Random(seed)
    dst_raw = socket.inet_aton(dst)
    dst_hi, dst_lo = struct.unpack("!HH", dst_raw)
    # IPv4: the constant words (version/IHL/TOS, length, id 0, DF, TTL/protocol, dst).
    ip_const = 0x4500 + _SYN_IP_LEN + 0x4000 + ((64 << 8) | 6) + dst_hi + dst_lo
    # TCP: pseudo-header constants + the constant header words + options.
    tcp_const = (dst_hi + dst_lo + 6 + _SYN_TCP_LEN + dst_port
                 + (((_SYN_TCP_LEN // 4) << 12) | SYN) + 64240 + _words(SYN_OPTIONS))
    out = bytearray(SYN_FRAME_LEN * count)
    eth = ETH_HEADER
    pack_ip, pack_tcp = _IP_HEAD.pack_into, _TCP_HEAD.pack_into
    getrandbits = rng.getrandbits
    for i in range(count):
        base = i * SYN_FRAME_LEN
        src_hi = 0x0A42                         # 10.66
        src_lo = (getrandbits(8) % 255) << 8 | (1 + getrandbits(8) % 254)
        sport = 1024 + getrandbits(16) % 64512
        seq = getrandbits(32)
        ip_sum = 0xFFFF - _fold(ip_const + src_hi + src_lo)
        tcp_sum = 0xFFFF - _fold(tcp_const + src_hi + src_lo + sport
                                 + (seq >> 16) + (seq & 0xFFFF))
        out[base:base + 14] = eth
        pack_ip(out, base + 14, 0x45, 0, _SYN_IP_LEN, 0, 0x4000, 64, 6, ip_sum,
                ((src_hi << 16) | src_lo).to_bytes(4, "big"), dst_raw)
        pack_tcp(out, base + 34, sport, dst_port, seq, 0,
                 ((_SYN_TCP_LEN // 4) << 12) | SYN, 64240, tcp_sum, 0)
        out[base + 54:base + SYN_FRAME_LEN] = SYN_OPTIONS
    view = bytes(out)
    return [view[i * SYN_FRAME_LEN:(i + 1) * SYN_FRAME_LEN] for i in range(count)]


# -- replies ---------------------------------------------------------------------------------

class Reply(NamedTuple):
    src: int               # addresses as 32-bit integers
    dst: int
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: bytes
    sack: tuple[tuple[int, int], ...]
    wscale: int | None
    mss: int | None


_ETH_IP_TCP = struct.Struct("!12xH2xH4xBB2x4s4s")   # ethertype, total length, ttl, proto, src, dst
_TCP_FIXED = struct.Struct("!HHIIBBHHH")


def parse_reply(buf: bytes | memoryview) -> Reply | None:
    """The TCP segment of an IPv4 frame, or None for anything else (ARP, ICMP,
    fragments, truncated frames). Checksums are not verified: a frame sent by
    a local stack may carry a partial checksum (offload)."""
    if len(buf) < 54:
        return None
    ethertype, total, _ttl, proto, src, dst = _ETH_IP_TCP.unpack_from(buf, 0)
    if ethertype != ETH_P_IP or proto != 6 or buf[14] >> 4 != 4:
        return None
    ihl = (buf[14] & 0x0F) * 4
    t = 14 + ihl
    end = min(len(buf), 14 + total)
    if end < t + 20:
        return None
    sport, dport, seq, ack, off, flags, window, _csum, _urg = _TCP_FIXED.unpack_from(buf, t)
    doff = (off >> 4) * 4
    if doff < 20 or t + doff > end:
        return None
    sack: tuple[tuple[int, int], ...] = ()
    wscale = mss = None
    if doff > 20:
        i, stop = t + 20, t + doff
        blocks = []
        while i < stop:
            kind = buf[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= stop:
                break
            length = buf[i + 1]
            if length < 2 or i + length > stop:
                break
            if kind == 5:
                for j in range(i + 2, i + length - 7, 8):
                    blocks.append(struct.unpack_from("!II", buf, j))
            elif kind == 3 and length == 3:
                wscale = buf[i + 2]
            elif kind == 2 and length == 4:
                mss = struct.unpack_from("!H", buf, i + 2)[0]
            i += length
        sack = tuple(blocks)
    return Reply(int.from_bytes(src, "big"), int.from_bytes(dst, "big"), sport, dport, seq,
                 ack, flags & 0x3F, window, bytes(buf[t + doff:end]), sack, wscale, mss)
