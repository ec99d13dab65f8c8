"""packetdrill's relative sequence numbers (``socket.h`` in packetdrill), per
connection under test, and its TCP timestamp mapping.

Sequence numbers in a script are like tcpdump's: absolute in packets with SYN
set, otherwise relative to that direction's ISN.

- Inbound (script -> live): the remote side is the script's, so its ISN is the
  one written in its SYN (the runner sends it as written): ``seq`` +
  remote ISN unless SYN. ``ack`` and SACK blocks acknowledge the local stack:
  + live local ISN (a SYN-ACK's ack: + live ISN - script ISN).
- Outbound (live -> script): the stack under test picks its own ISN, learned
  from its SYN or SYN-ACK; ``seq`` - live local ISN (a SYN's: - (live ISN -
  script ISN)); ``ack`` and SACK blocks - remote ISN (a SYN's: unchanged).

TS val of outbound packets is the stack's clock: it is mapped to script space
from the first pair seen (script val, live val) and not judged; each pair is
remembered so that the TS ecr of a later inbound packet that echoes a script
val carries the live val it stands for (else it is interpolated from the
first pair, as packetdrill's --tcp_ts_ecr_scaled does).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from tcpstack.drill.packets import ACK, SACK, SYN, TS, RawOption, WirePacket

_MASK = 0xFFFFFFFF


@dataclass
class SeqMap:
    remote_isn: int = 0
    script_local_isn: int = 0
    live_local_isn: int = 0
    ts_map: dict[int, int] = field(default_factory=dict)   # script TS val -> live TS val
    first_ts: tuple[int, int] | None = None                 # (script val, live val)
    notes: list[str] = field(default_factory=list)

    # -- offsets (packetdrill's names) -------------------------------------------
    def remote_offset(self, syn: bool) -> int:
        return 0 if syn else self.remote_isn

    def local_offset(self, syn: bool) -> int:
        return (self.live_local_isn - self.script_local_isn) & _MASK if syn \
            else self.live_local_isn

    # -- inbound --------------------------------------------------------------------
    def inbound(self, pkt: WirePacket) -> WirePacket:
        """``pkt`` (script values) as the live packet to send."""
        syn = pkt.has(SYN)
        seq = (pkt.seq + self.remote_offset(syn)) & _MASK
        ack_off = self.local_offset(syn)
        ack = (pkt.ack + ack_off) & _MASK if pkt.has(ACK) else pkt.ack
        options = _shift_sack(pkt.options, ack_off)
        if pkt.has(ACK):
            options = self._map_ecr(options)
        return replace(pkt, seq=seq, ack=ack, options=options)

    def _map_ecr(self, options: tuple[RawOption, ...]) -> tuple[RawOption, ...]:
        out = []
        for kind, data in options:
            if kind == TS and len(data) == 8:
                val, ecr = struct.unpack("!II", data)
                live = self.ts_map.get(ecr)
                if live is None and self.first_ts is not None:
                    live = (ecr - self.first_ts[0] + self.first_ts[1]) & _MASK
                if live is not None:
                    data = struct.pack("!II", val, live)
            out.append((kind, data))
        return tuple(out)

    # -- outbound --------------------------------------------------------------------
    def outbound(self, live: WirePacket, script_ts: tuple[int, int] | None) -> WirePacket:
        """``live`` with seq, ack, SACK blocks and TS val in script space."""
        syn = live.has(SYN)
        seq = (live.seq - self.local_offset(syn)) & _MASK
        ack_off = self.remote_offset(syn)
        ack = (live.ack - ack_off) & _MASK if live.has(ACK) else live.ack
        options = _shift_sack(live.options, -ack_off)
        live_ts = live.ts
        if live_ts is not None and script_ts is not None:
            self.ts_map[script_ts[0]] = live_ts[0]
            if self.first_ts is None:
                self.first_ts = (script_ts[0], live_ts[0])
        if live_ts is not None and self.first_ts is not None:
            val = (self.first_ts[0] + live_ts[0] - self.first_ts[1]) & _MASK
            options = tuple((k, struct.pack("!II", val, live_ts[1]) if k == TS and len(d) == 8
                             else d) for k, d in options)
        return replace(live, seq=seq, ack=ack, options=options)


def _shift_sack(options: tuple[RawOption, ...], offset: int) -> tuple[RawOption, ...]:
    if not offset or not any(k == SACK for k, _ in options):
        return options
    out = []
    for kind, data in options:
        if kind == SACK and data and len(data) % 8 == 0:
            words = struct.unpack(f"!{len(data) // 4}I", data)
            data = struct.pack(f"!{len(words)}I", *((w + offset) & _MASK for w in words))
        out.append((kind, data))
    return tuple(out)
