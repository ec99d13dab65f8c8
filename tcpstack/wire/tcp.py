"""TCP header and options as frozen dataclasses (RFC 9293 §3.1, RFC 7323, RFC 2018).

The parse/build functions live here too; they are filled in by the wire codec.
"""

from __future__ import annotations

from dataclasses import dataclass

# Control bits, RFC 9293 §3.1 (plus ECE/CWR from RFC 3168).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
               (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))


def flags_str(flags: int) -> str:
    """``SYN|ACK`` style text for a flags byte (``-`` for none)."""
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return "|".join(names) if names else "-"


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """The TCP options tcpstack understands. ``None``/empty means absent."""

    mss: int | None = None                      # RFC 9293 §3.7.1, kind 2
    wscale: int | None = None                   # RFC 7323 §2, kind 3 (shift count)
    sack_permitted: bool = False                # RFC 2018 §2, kind 4
    sack_blocks: tuple[tuple[int, int], ...] = ()  # RFC 2018 §3, kind 5: (left, right)
    timestamps: tuple[int, int] | None = None   # RFC 7323 §3, kind 8: (TSval, TSecr)


NO_OPTIONS = TcpOptions()


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """One TCP segment. ``seq``/``ack`` are the raw 32-bit wire values.

    ``window`` is the raw 16-bit field (not scaled). ``payload`` may be longer
    than the MSS when it is a TSO super-segment for an offloading link.
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int = 0
    options: TcpOptions = NO_OPTIONS
    payload: bytes = b""

    @property
    def seg_len(self) -> int:
        """SEG.LEN: payload length plus one for each of SYN and FIN (RFC 9293 §3.4)."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __str__(self) -> str:
        return (f"{self.src_port}>{self.dst_port} [{flags_str(self.flags)}] seq={self.seq} "
                f"ack={self.ack} win={self.window} len={len(self.payload)}")
