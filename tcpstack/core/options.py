"""SYN option negotiation: MSS (RFC 9293 §3.7.1), window scale and timestamps
(RFC 7323), SACK-permitted (RFC 2018). Pure functions of the two SYNs."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tcpstack.core.config import ConnectionOptions
from tcpstack.wire.fastinit import fast_constructor
from tcpstack.wire.tcp import TcpOptions, new_options

__all__ = ["DEFAULT_MSS", "DEFAULT_MSS6", "MAX_WSCALE", "Negotiated", "default_mss", "mtu_mss",
           "negotiate", "our_offer", "receive_wscale", "syn_options", "tsval_at"]

DEFAULT_MSS = 536              # RFC 9293 §3.7.1: assume 536 when the peer sends no MSS
DEFAULT_MSS6 = 1220            # ... and 1220 over IPv6 (the 1280-byte minimum MTU - 60)
IPV4_OVERHEAD = 40             # IPv4 + TCP fixed headers: MSS = MTU - 40 (RFC 9293 §3.7.1)
IPV6_OVERHEAD = 60             # IPv6 (RFC 8200 §3, 40 bytes) + TCP: MSS = MTU - 60
IPV6_MIN_MTU = 1280            # RFC 8200 §5: every IPv6 link carries 1280 bytes
TS_OPTION_LEN = 12             # RFC 7323 Appendix A: NOP NOP TS(10)
MAX_WSCALE = 14                # RFC 7323 §2.3
MIN_MSS = 64                   # never below this, whatever the peer says


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both ends agreed on."""

    mss: int                   # payload bytes per segment we send (options deducted)
    window_scale: bool
    snd_wscale: int            # shift of the peer's window fields
    rcv_wscale: int            # shift of ours (0 when scaling is off)
    timestamps: bool
    sack: bool


# Negotiated(...) with every field positional, built without the frozen
# dataclass's per-field object.__setattr__ (one per handshake).
_new_negotiated = fast_constructor(Negotiated)


@functools.lru_cache(maxsize=64)
def receive_wscale(recv_buffer: int) -> int:
    """The least shift that lets a 16-bit window field cover ``recv_buffer``."""
    ws = 0
    while ws < MAX_WSCALE and (recv_buffer >> ws) > 0xFFFF:
        ws += 1
    return ws


@functools.lru_cache(maxsize=64)
def default_mss(ipv6: bool) -> int:
    """The MSS to assume when the peer's SYN has no MSS option (RFC 9293 §3.7.1)."""
    return DEFAULT_MSS6 if ipv6 else DEFAULT_MSS


def mtu_mss(mtu: int, ipv6: bool) -> int:
    """The largest MSS an ``mtu``-byte link carries: MTU - 40 for IPv4, MTU - 60
    for IPv6 (with the MTU never below IPv6's 1280-byte minimum, RFC 8200 §5)."""
    if ipv6:
        return max(mtu, IPV6_MIN_MTU) - IPV6_OVERHEAD
    return mtu - IPV4_OVERHEAD


def our_offer(options: ConnectionOptions, mtu: int, ipv6: bool = False) -> TcpOptions:
    """What our SYN or SYN-ACK offers, from the connection's options and the MTU
    (timestamps as a placeholder pair: ``syn_options`` fills them in)."""
    wscale = receive_wscale(options.recv_buffer) if options.window_scale else None
    # The MSS to advertise: the option's, but never beyond what the MTU carries.
    largest = mtu_mss(mtu, ipv6)
    mss = min(options.mss, largest) if options.mss else largest
    return new_options(mss, wscale, options.sack, (), (0, 0) if options.timestamps else None)


def tsval_at(now: float, offset: int) -> int:
    """Our TSval at ``now``: a 1 ms clock (RFC 7323 §5.4) plus the connection's offset."""
    return (int(now * 1000) + offset) & 0xFFFFFFFF


def syn_options(ours: TcpOptions, tsval: int, reply_to: TcpOptions | None) -> TcpOptions:
    """Options for our SYN (``reply_to`` None: everything we offer) or SYN-ACK
    (only what the peer's SYN offered: RFC 7323 §2.2, §3.2; RFC 2018 §2)."""
    # new_options: TcpOptions(mss, wscale, sack_permitted, sack_blocks, timestamps).
    if reply_to is None:
        ts = (tsval, 0) if ours.timestamps is not None else None
        return new_options(ours.mss, ours.wscale, ours.sack_permitted, (), ts)
    wscale = ours.wscale if reply_to.wscale is not None else None
    ts = None
    if ours.timestamps is not None and reply_to.timestamps is not None:
        ts = (tsval, reply_to.timestamps[0])
    return new_options(ours.mss, wscale, ours.sack_permitted and reply_to.sack_permitted, (),
                       ts)


def negotiate(ours: TcpOptions, peer_syn: TcpOptions, ipv6: bool = False) -> Negotiated:
    """The result of our offer (``ours``: the options our SYN carries or would
    carry, timestamps as any pair) meeting the peer's SYN options."""
    window_scale = ours.wscale is not None and peer_syn.wscale is not None
    timestamps = ours.timestamps is not None and peer_syn.timestamps is not None
    fallback = default_mss(ipv6)
    ours_mss = ours.mss or fallback
    mss = min(peer_syn.mss if peer_syn.mss else fallback, ours_mss)
    option_room = TS_OPTION_LEN if timestamps else 0   # every segment carries the option
    # A floor against a peer that claims a tiny MSS, but never above what our
    # own MTU allows (RFC 879: a 68-byte IPv4 MTU is an MSS of 28).
    floor = min(MIN_MSS, ours_mss - option_room)
    return _new_negotiated(
        max(mss - option_room, floor, 1),                                   # mss
        window_scale,
        min(peer_syn.wscale, MAX_WSCALE) if window_scale else 0,  # snd_wscale, RFC 7323 §2.3
        ours.wscale if window_scale else 0,                                 # rcv_wscale
        timestamps,
        ours.sack_permitted and peer_syn.sack_permitted,                    # sack
    )
