"""Initial sequence numbers (RFC 6528) and ephemeral port offsets (RFC 6056).

Both are keyed hashes of the connection's addresses with a per-stack secret,
so an off-path attacker cannot predict them, while the same 4-tuple keeps a
monotonic sequence space across incarnations (which is what RFC 9293 §3.4.1
wants the clock for). The core takes the secret and ``now`` as arguments; it
never reads a random source or a clock itself.
"""

from __future__ import annotations

import hashlib
import struct

from tcpstack.seq import Seq

# RFC 6528 §3: "M is the 4 microsecond timer". 1 s / 4 µs = 250,000 ticks.
ISN_TICKS_PER_SECOND = 250_000

_BLAKE2S_MAX_KEY = 32
_PORT = struct.Struct("!H")


def secret_key(secret: bytes) -> bytes:
    """A blake2s key from any secret (RFC 6528 §3 recommends at least 128 bits)."""
    if len(secret) <= _BLAKE2S_MAX_KEY:
        return bytes(secret)
    return hashlib.blake2s(secret).digest()


def _hash32(key: bytes, person: bytes, data: bytes) -> int:
    h = hashlib.blake2s(data, digest_size=4, key=key, person=person)
    return int.from_bytes(h.digest(), "big")


def _endpoint(addr: str, port: int) -> bytes:
    # The address text cannot contain "|" and the port is fixed-width, so the
    # concatenation of endpoints is unambiguous.
    return addr.encode() + b"|" + _PORT.pack(port & 0xFFFF)


class IsnGenerator:
    """RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey)."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = secret_key(secret)

    def offset(self, local_addr: str, local_port: int, remote_addr: str, remote_port: int) -> int:
        """F(): the keyed-hash part of the ISN, constant for one 4-tuple and secret."""
        data = _endpoint(local_addr, local_port) + _endpoint(remote_addr, remote_port)
        return _hash32(self._key, b"tcp-isn", data)

    def ts_offset(self, local_addr: str, local_port: int, remote_addr: str,
                  remote_port: int) -> int:
        """The connection's TSval offset (RFC 7323 §7.1, Linux ``ts_off``): a keyed hash
        of the 4-tuple, unrelated to the ISN, so a SYN-ACK tells nothing of the
        stack's clock; the same 4-tuple keeps it, so its TSvals stay monotonic
        across incarnations (RFC 6191)."""
        data = _endpoint(local_addr, local_port) + _endpoint(remote_addr, remote_port)
        return _hash32(self._key, b"tcp-ts", data)

    def isn(
        self, local_addr: str, local_port: int, remote_addr: str, remote_port: int, now: float
    ) -> Seq:
        """The ISN for a new connection on this 4-tuple at time ``now`` (seconds)."""
        ticks = int(now * ISN_TICKS_PER_SECOND)  # RFC 6528 §3: M, a 4 µs timer
        return Seq(ticks + self.offset(local_addr, local_port, remote_addr, remote_port))

    def isn_and_ts_offset(self, local_addr: str, local_port: int, remote_addr: str,
                          remote_port: int, now: float) -> tuple[Seq, int]:
        """``isn(...)`` and ``ts_offset(...)`` of one 4-tuple, its bytes encoded once."""
        data = _endpoint(local_addr, local_port) + _endpoint(remote_addr, remote_port)
        ticks = int(now * ISN_TICKS_PER_SECOND)  # RFC 6528 §3: M, a 4 µs timer
        key = self._key
        return (Seq(ticks + _hash32(key, b"tcp-isn", data)), _hash32(key, b"tcp-ts", data))


def port_offset(secret: bytes, local_addr: str, remote_addr: str, remote_port: int) -> int:
    """RFC 6056 §3.3.3 (Algorithm 3): F(local_IP, remote_IP, remote_port, secret_key).

    A 32-bit value; the caller picks the ephemeral port as
    ``min_port + (next_ephemeral + offset) % num_ephemeral`` and advances its
    own ``next_ephemeral`` counter, so different destinations probe the port
    range from different, unpredictable starting points.
    """
    data = local_addr.encode() + b"|" + _endpoint(remote_addr, remote_port)
    return _hash32(secret_key(secret), b"tcp-port", data)
