"""SYN cookies (RFC 4987 §3.6): a SYN-ACK whose ISS carries what the listener
would otherwise keep, so a SYN flood fills no queue.

The cookie, as Linux builds it (``secure_tcp_syn_cookie``):

    ISS = H1(4-tuple) + peer ISN + (count << 24) + ((H2(4-tuple, count) + mss_index) mod 2**24)

``count`` is a minute counter; H1 and H2 are keyed hashes (blake2s with the
stack's secret). The returning ACK (SEG.ACK = ISS + 1, SEG.SEQ = peer ISN + 1)
is valid when its count is at most ``MAX_AGE`` minutes old and the low 24 bits
decode to an index of ``MSS_TABLE``. With timestamps, the window scale the
peer offered and its SACK-permitted travel in the low 6 bits of our TSval and
come back in its TSecr (Linux ``cookie_init_timestamp``), so a cookie
connection loses nothing that matters; without timestamps it goes without
window scaling and SACK, as on Linux. Pure functions: the secret and the
time come in as arguments.
"""

from __future__ import annotations

import hashlib
import struct

from tcpstack.core.isn import secret_key

__all__ = ["MAX_AGE", "MSS_TABLE", "check_cookie", "cookie_count", "decode_ts_options",
           "encode_ts_options", "make_cookie"]

# Linux msstab[] (net/ipv4/syncookies.c): the MSS the peer offered is rounded
# down to one of these; the index takes 2 of the cookie's 24 low bits.
MSS_TABLE = (536, 1300, 1440, 1460)
COOKIE_BITS = 24
COOKIE_MASK = (1 << COOKIE_BITS) - 1
COUNTER_SECONDS = 60.0            # Linux: one count per minute
MAX_AGE = 2                       # counts a cookie stays valid (Linux MAX_SYNCOOKIE_AGE)
TS_OPTION_BITS = 6                # TSval bits used for options (Linux TSBITS)
_TS_MASK = (1 << TS_OPTION_BITS) - 1
_NO_WSCALE = 0xF                  # bits 0-3: the peer's wscale, 0xF for none
_SACK_BIT = 1 << 4
_PORTS = struct.Struct("!HHB")
_MASK = 0xFFFFFFFF


def cookie_count(now: float) -> int:
    return int(now // COUNTER_SECONDS)


def _hash(key: bytes, tuple4: tuple[str, int, str, int], count: int, which: int) -> int:
    local_addr, local_port, remote_addr, remote_port = tuple4
    data = (local_addr.encode() + b"|" + remote_addr.encode() + b"|"
            + _PORTS.pack(local_port & 0xFFFF, remote_port & 0xFFFF, which)
            + count.to_bytes(8, "big"))
    digest = hashlib.blake2s(data, digest_size=4, key=key, person=b"tcp-cook").digest()
    return int.from_bytes(digest, "big")


def mss_index(peer_mss: int) -> int:
    """The largest table entry not above what the peer offered (0 for anything lower)."""
    index = 0
    for i, mss in enumerate(MSS_TABLE):
        if mss <= peer_mss:
            index = i
    return index


def make_cookie(secret: bytes, tuple4: tuple[str, int, str, int], peer_isn: int,
                peer_mss: int, now: float) -> int:
    """Our ISS for a SYN from ``tuple4`` (local addr, local port, remote addr,
    remote port) answered without state."""
    key = secret_key(secret)
    count = cookie_count(now)
    low = (_hash(key, tuple4, count, 2) + mss_index(peer_mss)) & COOKIE_MASK
    return (_hash(key, tuple4, 0, 1) + peer_isn + (count << COOKIE_BITS) + low) & _MASK


def check_cookie(secret: bytes, tuple4: tuple[str, int, str, int], peer_isn: int,
                 cookie: int, now: float) -> int | None:
    """The MSS encoded in ``cookie`` (SEG.ACK - 1 of the returning ACK), or None
    when it is forged or older than ``MAX_AGE`` counts."""
    key = secret_key(secret)
    count = cookie_count(now)
    value = (cookie - _hash(key, tuple4, 0, 1) - peer_isn) & _MASK
    age = (count - (value >> COOKIE_BITS)) & (_MASK >> COOKIE_BITS)
    if age >= MAX_AGE:
        return None
    index = (value - _hash(key, tuple4, count - age, 2)) & COOKIE_MASK
    if index >= len(MSS_TABLE):
        return None
    return MSS_TABLE[index]


def encode_ts_options(tsval: int, peer_wscale: int | None, peer_sack: bool) -> int:
    """Our TSval with the peer's wscale and SACK-permitted in its low 6 bits,
    never ahead of ``tsval`` (Linux moves it back by 64 ms if needed)."""
    bits = (_NO_WSCALE if peer_wscale is None else min(peer_wscale, 14)) \
        | (_SACK_BIT if peer_sack else 0)
    value = (tsval & ~_TS_MASK & _MASK) | bits
    if (value - tsval) & _MASK < 0x80000000 and value != tsval:
        value = (value - (1 << TS_OPTION_BITS)) & _MASK
    return value


def decode_ts_options(tsecr: int) -> tuple[int | None, bool]:
    """The peer's wscale (None: not offered) and SACK-permitted from its TSecr."""
    wscale = tsecr & 0xF
    return (None if wscale == _NO_WSCALE else wscale), bool(tsecr & _SACK_BIT)
