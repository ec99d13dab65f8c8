"""Comparing an outbound packet with the script's line, as packetdrill does.

Both sides are in script space (``seqmap``). Strict (the default) judges what
packetdrill's ``verify_outbound_live_packet`` judges: every flag, seq, ack,
payload length and bytes (a script's payload is zeros), the window when the
script gives ``win``, the urgent pointer, and the options in order and value
unless the script wrote ``<...>``. TS val is the stack's clock and is not
judged (unless --tcp_ts_tick_usecs is given); TS ecr is judged: it must echo
the script's value.

Lenient judges flags, seq, ack and payload length only (and order, since
packets are taken in order); window, options and timing differences become
notes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tcpstack.drill.model import PacketSpec
from tcpstack.drill.packets import (
    ACK,
    TS,
    WirePacket,
    flags_from_letters,
    option_text,
    options_from_spec,
)


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _field(name: str, expected: int, actual: int) -> str:
    return (f"live packet field {name}: expected: {expected} ({expected:#x}) vs actual: "
            f"{actual} ({actual:#x})")


def expected_packet(spec: PacketSpec, actual: WirePacket) -> WirePacket:
    """The script line as a packet (addresses and ports from ``actual``)."""
    flags = flags_from_letters(spec.flags)
    options = options_from_spec(spec.options) if spec.options is not None else actual.options
    return WirePacket(actual.src, actual.dst, actual.src_port, actual.dst_port, spec.seq,
                      spec.ack or 0, flags,
                      spec.window if spec.window is not None else actual.window,
                      spec.urgent, options, bytes(spec.payload_len))


def compare(spec: PacketSpec, actual: WirePacket, *, strict: bool = True,
            ts_tick_usecs: int = 0, tolerance_usecs: int = 4000) -> Verdict:
    v = Verdict()
    flags = flags_from_letters(spec.flags)
    for letter, bit, name in ((".", ACK, "tcp_ack"), ("S", 0x02, "tcp_syn"),
                              ("R", 0x04, "tcp_rst"), ("F", 0x01, "tcp_fin"),
                              ("P", 0x08, "tcp_psh"), ("U", 0x20, "tcp_urg"),
                              ("E", 0x40, "tcp_ece"), ("W", 0x80, "tcp_cwr")):
        del letter
        if bool(flags & bit) != actual.has(bit):
            v.errors.append(_field(name, int(bool(flags & bit)), int(actual.has(bit))))
    if spec.seq != actual.seq:
        v.errors.append(_field("tcp_seq", spec.seq, actual.seq))
    if spec.ack is not None or flags & ACK:
        want = spec.ack or 0
        if want != actual.ack:
            v.errors.append(_field("tcp_ack_seq", want, actual.ack))
    if spec.payload_len != len(actual.payload):
        v.errors.append(f"live packet payload: expected {spec.payload_len} bytes vs actual "
                        f"{len(actual.payload)} bytes")
    elif strict and any(actual.payload):
        v.errors.append("incorrect outbound data payload")
    if spec.window is not None and spec.window != actual.window:
        (v.errors if strict else v.notes).append(_field("tcp_window", spec.window,
                                                        actual.window))
    if spec.urgent != actual.urgent:
        (v.errors if strict else v.notes).append(_field("tcp_urg_ptr", spec.urgent,
                                                        actual.urgent))
    if spec.options is not None:
        problem = _compare_options(spec, actual, ts_tick_usecs, tolerance_usecs)
        if problem:
            (v.errors if strict else v.notes).append(problem)
    return v


def _compare_options(spec: PacketSpec, actual: WirePacket, ts_tick_usecs: int,
                     tolerance_usecs: int) -> str | None:
    want = options_from_spec(spec.options or ())
    got = actual.options
    if [k for k, _ in want] != [k for k, _ in got]:
        return "bad outbound TCP options"
    for (kind, wdata), (_, gdata) in zip(want, got, strict=True):
        if kind == TS:
            if len(gdata) != 8:
                return "bad lengths for outbound TCP option 8"
            wval, wecr = struct.unpack("!II", wdata)
            gval, gecr = struct.unpack("!II", gdata)
            if ts_tick_usecs:
                diff = (gval - wval) & 0xFFFFFFFF
                diff = diff - (1 << 32) if diff >= 1 << 31 else diff
                if abs(diff) * ts_tick_usecs > tolerance_usecs:
                    return (f"bad outbound TCP timestamp value, tolerance {tolerance_usecs}: "
                            f"expected {wval} vs actual {gval}")
            if wecr != gecr:
                return f"bad outbound TCP timestamp ecr: expected {wecr} vs actual {gecr}"
        elif wdata != gdata:
            if len(wdata) != len(gdata):
                return f"bad lengths for outbound TCP option {kind}"
            return (f"bad value outbound TCP option {kind}: expected "
                    f"<{option_text(kind, wdata)}> vs actual <{option_text(kind, gdata)}>")
    return None
