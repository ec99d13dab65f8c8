"""What an ICMP error does to one connection: path MTU and soft/hard errors.

``IcmpSide`` is a part of ``Connection`` (a mixin: the same TCB, the same
``self``), like ``SendSide``. The stack has already found the connection and
checked the report (RFC 5927 §4.1: the quoted sequence number lies within
SND.UNA..SND.NXT) before it calls ``icmp_error``.

- Packet Too Big / fragmentation needed (RFC 1191, RFC 8201): the path MTU
  falls to the reported next-hop MTU (the RFC 1191 §7 plateau below the
  current one when the router gives none; never below ``min_pmtu``), the
  send MSS follows, and what is in flight was too big to arrive: it goes again
  at once at the new size (Linux ``tcp_simple_retransmit``). That is not a
  congestion signal (RFC 1191 §6.5 "not ... a loss"): cwnd stays. The
  destination's entry in the stack's cache (``core/pmtu.py``) ages out after
  ``pmtu_expires``; the connection then goes back to the link MTU.
- Destination unreachable, time exceeded, parameter problem: during SYN-SENT
  they end the connect at once with the matching error (RFC 1122 §4.2.3.9 for
  the hard ones, RFC 5461 §4 for the soft ones too, as Linux ``tcp_v4_err``
  does). In the other states they are remembered as the connection's last soft
  error (Linux ``sk_err_soft``) and reported only if it times out: RFC 1122
  §4.2.3.9 says soft errors MUST NOT abort, and RFC 5927 §5.2 treats the hard
  ones as soft once synchronized, since a forged one could reset a connection
  blind.
"""

from __future__ import annotations

from tcpstack.core.errors import (
    TcpAdminProhibited,
    TcpHostUnreachable,
    TcpNetworkUnreachable,
    TcpParameterProblem,
    TcpPortUnreachable,
    TcpProtocolUnreachable,
    TcpSourceRouteFailed,
    TcpTimeout,
    TcpUnreachable,
)
from tcpstack.core.events import EventKind, TraceEvent
from tcpstack.core.pmtu import plateau_below
from tcpstack.core.recovery import RecoveryState
from tcpstack.core.state import State
from tcpstack.core.timers import LOSS_PROBE, REORDER, RETRANSMIT
from tcpstack.seq import Seq, seq_diff
from tcpstack.wire.icmp import IcmpError, IcmpErrorKind
from tcpstack.wire.tcp import ACK

__all__ = ["IcmpSide", "connection_error"]

IPV4_TCP_HEADERS = 40          # IPv4 + TCP headers without options
TS_OPTION_ROOM = 12            # the timestamps option every segment carries once agreed
MTU_PROBE_THRESHOLD = 8        # Linux tcp_probe_threshold: the search stops this close

_ERRORS: dict[IcmpErrorKind, tuple[type[TcpUnreachable], str]] = {
    IcmpErrorKind.NET_UNREACHABLE: (TcpNetworkUnreachable, "network is unreachable"),
    IcmpErrorKind.HOST_UNREACHABLE: (TcpHostUnreachable, "no route to host"),
    IcmpErrorKind.PROTOCOL_UNREACHABLE: (TcpProtocolUnreachable, "protocol unreachable"),
    IcmpErrorKind.PORT_UNREACHABLE: (TcpPortUnreachable, "connection refused"),
    IcmpErrorKind.ADMIN_PROHIBITED: (TcpAdminProhibited, "administratively prohibited"),
    IcmpErrorKind.SOURCE_ROUTE_FAILED: (TcpSourceRouteFailed, "source route failed"),
    IcmpErrorKind.TIME_EXCEEDED: (TcpHostUnreachable, "no route to host (time exceeded)"),
    IcmpErrorKind.PARAMETER_PROBLEM: (TcpParameterProblem, "protocol error"),
}

_SEND_STATES = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1,
                          State.CLOSING, State.LAST_ACK})


def connection_error(err: IcmpError) -> TcpUnreachable:
    """The error an application hears for ``err`` (not for a Packet Too Big)."""
    cls, text = _ERRORS[err.kind]
    return cls(f"{text} (ICMP {err.kind.value} from {err.reporter})")


class IcmpSide:
    """ICMP errors and the path MTU of ``Connection``."""

    __slots__ = ()

    def icmp_error(self, err: IcmpError, now: float) -> None:
        """An ICMP error about this connection, already validated by the stack."""
        if err.kind is IcmpErrorKind.PACKET_TOO_BIG:
            self._packet_too_big(err, now)
            return
        ctx = self._ctx
        error = connection_error(err)
        if self.state is State.SYN_SENT:
            ctx.count("icmp_connect_failed")
            self._fail(error, now)
            return
        self._soft_error = error
        ctx.count("icmp_soft_errors")

    def _timeout_error(self) -> ConnectionError:
        """What a connection that gives up reports: the last soft error, if any."""
        soft = self._soft_error
        if soft is None:
            return TcpTimeout("connection timed out")
        return type(soft)(f"connection timed out: {soft}")

    # ------------------------------------------------------------ path MTU
    def _header_room(self) -> int:
        return IPV4_TCP_HEADERS + (TS_OPTION_ROOM if self._ts_ok else 0)

    def _effective_mtu(self) -> int:
        """The path MTU learned from ICMP, or the probed floor when that is lower."""
        low = self._probe_low
        return low if low and low < self._pmtu else self._pmtu

    def _path_mss(self) -> int:
        """The send MSS: what the peer takes, cut to what the path carries."""
        fits = self._effective_mtu() - self._header_room()
        return fits if fits < self._mss_cap else self._mss_cap

    def _packet_too_big(self, err: IcmpError, now: float) -> None:
        """RFC 1191 §6.1: lower the path MTU to what the router reported."""
        ctx = self._ctx
        cfg = self._cfg
        current = self._pmtu
        mtu = err.mtu if err.mtu else plateau_below(current)
        if mtu < cfg.min_pmtu:
            # RFC 1191 §3 / Linux ip_rt_min_pmtu: a report this low is not believed.
            ctx.count("icmp_pmtu_below_minimum")
            mtu = cfg.min_pmtu
        if mtu >= current:
            ctx.count("icmp_pmtu_not_lower")
            return
        self._pmtu_expires = ctx.pmtu.lower(self.remote[0], mtu, now)
        self._set_pmtu(mtu, now, f"ICMP {err.kind.value} from {err.reporter}")

    def _set_pmtu(self, mtu: int, now: float, why: str) -> None:
        old = self._effective_mtu()
        self._pmtu = mtu
        if self._probe_high > mtu:
            self._probe_high = mtu                    # never probe above what ICMP said
        self._path_changed(old, now, why)

    def _path_changed(self, old_mtu: int, now: float, why: str,
                      resend: bool = True) -> None:
        """The effective path MTU moved from ``old_mtu``: the MSS follows; a smaller
        one resends what is in flight (unless the caller resends it anyway)."""
        ctx = self._ctx
        mtu = self._effective_mtu()
        if mtu == old_mtu or self.state is State.SYN_SENT:
            return                                    # in SYN-SENT the MSS is agreed later
        old_mss = self.mss
        new_mss = self._path_mss()
        ctx.count("pmtu_lowered" if mtu < old_mtu else "pmtu_raised")
        if ctx.tracer is not None:
            ctx.trace(TraceEvent(now, EventKind.PMTU, self.local, self.remote,
                                 reason=f"MSS {old_mss} -> {new_mss}, path MTU {old_mtu} -> "
                                        f"{mtu}: {why}"))
        if new_mss == old_mss:
            return
        self.mss = new_mss
        self.cc.mss = new_mss
        if not resend or new_mss > old_mss or self.state not in _SEND_STATES \
                or seq_diff(self.snd_max, self.snd_una) == 0:
            return
        # Everything in flight was cut to the old MSS and did not fit: go back to
        # SND.UNA and send it again now, at the new size (Linux
        # tcp_simple_retransmit). cwnd is not touched: not a congestion signal.
        ctx.count("pmtu_retransmits")
        timers = self._timers
        self._rtt_seq = None                          # Karn: no samples from these
        self.mtu_probe = None
        self._recovery.on_rto(self)
        self._short_sent = None
        self._short_charge = 0
        timers.at[LOSS_PROBE] = timers.at[REORDER] = None
        self.snd_nxt = self.snd_una
        self._output(now)
        timers.arm(RETRANSMIT, now + self.rtt.rto)

    def _pmtu_check_expiry(self, now: float) -> None:
        """The destination's cache entry aged out (RFC 1191 §6.3): try the link MTU
        again (or what another connection has since learned)."""
        entry = self._ctx.pmtu.get(self.remote[0], now)
        if entry is None:
            self._pmtu_expires = None
            self._set_pmtu(self._cfg.mtu, now, "path MTU estimate aged out")
        else:
            self._pmtu_expires = entry[1]
            if entry[0] != self._pmtu:
                self._set_pmtu(entry[0], now, "path MTU from the stack's cache")

    # ------------------------------------------------------------ MTU probing
    # RFC 4821 (RFC 8899 §5 for the search) as Linux tcp_mtu_probing does it:
    # a floor ``_probe_low`` known to pass (0: probing off), a ceiling
    # ``_probe_high``, and one probe segment at a time sized between them.

    def _probing_start(self, now: float, why: str, resend: bool) -> None:
        """Start searching from ``base_mss`` (Linux tcp_base_mss) upward."""
        room = self._header_room()
        low = self._cfg.base_mss + room
        if low >= self._effective_mtu():
            return
        old = self._effective_mtu()
        self._probe_low = low
        self._probe_high = self._pmtu
        self._path_changed(old, now, why, resend)

    def _mtu_probing_on_established(self, now: float) -> None:
        """``mtu_probing="always"`` (Linux 2): segments start at base_mss."""
        if self._cfg.mtu_probing == "always":
            self._probing_start(now, "MTU probing: starting at base MSS", resend=False)

    def _blackhole_suspected(self, now: float) -> None:
        """Retransmission timeouts in a row with no ICMP (RFC 4821 §7.7; Linux
        tcp_mtu_probing() after tcp_retries1 = 3): full-size segments may be
        vanishing in a PMTU black hole. Drop to base_mss, then (next time) halve."""
        cfg = self._cfg
        if cfg.mtu_probing == "off" or self.state not in _SEND_STATES:
            return
        self.mtu_probe = None
        if not self._probe_low:
            if self.mss <= cfg.base_mss or seq_diff(self.snd_max, self.snd_una) <= cfg.base_mss:
                return          # nothing in flight larger than base_mss: not a black hole
            self._ctx.count("mtu_blackhole_detected")
            self._probing_start(now, "black hole suspected", resend=False)
            return
        room = self._header_room()
        floor = min(cfg.min_pmtu, self._pmtu)
        low = max(min(cfg.base_mss, (self._probe_low - room) >> 1) + room, floor)
        if low >= self._probe_low:
            return
        old = self._effective_mtu()
        self._probe_high = self._probe_low
        self._probe_low = low
        self._ctx.count("mtu_blackhole_lowered")
        self._path_changed(old, now, "still timing out", resend=False)

    def _mtu_probe_maybe(self, now: float, unsent: int, usable: int) -> bool:
        """Send one probe segment of the size half-way between floor and ceiling
        when the search is not done and the connection is in a state to tell
        (Linux tcp_mtu_probe: Open state, cwnd of 11 segments, data to follow)."""
        low, high = self._probe_low, self._probe_high
        if high - low <= MTU_PROBE_THRESHOLD or self.mtu_probe is not None:
            return False
        mss = self.mss
        if (self._recovery.state is not RecoveryState.OPEN or self.cc.cwnd < 11 * mss
                or seq_diff(self.snd_nxt, self.snd_max) != 0 or (self._sack_ok and self._ooo)):
            return False
        probe_mtu = (low + high) >> 1
        size = probe_mtu - self._header_room()
        if size <= mss or unsent < size + mss or usable < size:
            return False
        start = self.snd_nxt
        payload = self._sndbuf.peek(seq_diff(start, self._buf_seq), size)
        self._emit(self._segment(start, ACK, now, payload), now)
        self.mtu_probe = (int(start), size)
        self._probe_mtu = probe_mtu
        self._ctx.count("mtu_probes_sent")
        self._account_sent(start, start + size, now)
        return True

    def _mtu_probe_acked(self, ack: Seq, now: float) -> None:
        """The probe arrived: its size is the new floor (RFC 4821 §7.6.1)."""
        probe = self.mtu_probe
        if probe is None or seq_diff(ack, probe[0] + probe[1]) < 0:
            return
        self.mtu_probe = None
        old = self._effective_mtu()
        self._probe_low = self._probe_mtu
        self._ctx.count("mtu_probes_acked")
        self._path_changed(old, now, "MTU probe acknowledged")

    def _mtu_probe_lost(self) -> None:
        """The probe was lost (RFC 4821 §7.6.2): the ceiling comes down below it."""
        if self.mtu_probe is None:
            return
        self.mtu_probe = None
        self._probe_high = self._probe_mtu - 1
        self._ctx.count("mtu_probes_lost")
