"""Congestion control: NewReno (RFC 5681 / RFC 6582) and CUBIC (RFC 9438); BBR in bbr.py.

A controller owns ``cwnd`` and ``ssthresh`` (both in bytes) and nothing else:
the connection detects events (new ACKs, entering and leaving fast recovery,
retransmission timeouts, restarting after idle) and calls the matching
method; it alone decides what to send (RFC 6675 ``pipe``, Reno inflation,
limited transmit). Every method is a handful of arithmetic operations, since
``on_ack`` runs once per ACK on the data path.

Event contract for the caller:

- ``on_ack(acked_bytes, now, srtt, in_recovery)`` for every ACK that advances
  SND.UNA, with the number of newly acknowledged bytes. No growth while
  ``in_recovery`` (RFC 6582 §3.2 step 4 grows nothing; inflation is the
  caller's business).
- ``on_enter_recovery(now, flight_size)`` on the third duplicate ACK (or the
  RFC 6675 loss trigger): sets ``ssthresh`` and ``cwnd = ssthresh``. A NewReno
  sender that wants the classic "+3 MSS" inflation of RFC 6582 §3.2 step 3
  adds it itself (and the per-dup-ACK +1 MSS of step 4); a SACK sender
  (RFC 6675 §5 step 4.2) uses ``cwnd`` as is, against ``pipe``.
- ``on_exit_recovery(now)`` on the full ACK ending recovery (RFC 6582 §3.2
  step 5): ``cwnd = ssthresh`` (which deflates any inflation).
- ``on_rto(now, flight_size)`` when the retransmission timer fires.
- ``on_idle_restart(now, rto)`` before sending after the connection was idle
  for longer than ``rto`` (RFC 5681 §4.1).
"""

from __future__ import annotations

from typing import Protocol

# Linux's TCP_INFINITE_SSTHRESH: "effectively infinite" (RFC 5681 §3.1: "The
# initial value of ssthresh SHOULD be set arbitrarily high").
INFINITE_SSTHRESH = 0x7FFFFFFF

# RFC 3465 §2.2: appropriate byte counting limit L in slow start, 2*SMSS.
ABC_LIMIT_SEGMENTS = 2

# RFC 9438 §5: constants.
CUBIC_C = 0.4
CUBIC_BETA = 0.7
# RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta), for the Reno-friendly estimate.
CUBIC_ALPHA = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA)

# The least ssthresh after a loss, in segments. RFC 5681 §3.1 equation (4)
# floors it at 2*SMSS (so does Linux); tcpstack's default is 4, BBR's minimum
# window (draft-ietf-ccwg-bbr, BBRMinPipeCwnd). With two segments in flight a
# lost retransmission plus one lost ACK leaves nothing to clock recovery and
# the connection waits for the RTO (>= 200 ms); four keep the ACK clock alive
# through that. At 5% random loss each way this is the difference between
# ~17 and ~1 timeouts per 20 MB (docs/performance.md). 2 gives RFC 5681 exactly.
DEFAULT_MIN_SSTHRESH_SEGMENTS = 4
RFC5681_MIN_SSTHRESH_SEGMENTS = 2


def initial_window(mss: int) -> int:
    """RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)) bytes.

    For the usual MSS of 1460 (and anything smaller) this is 10 segments.
    """
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl(Protocol):
    """What the connection calls. ``cwnd`` and ``ssthresh`` are bytes."""

    name: str
    mss: int
    cwnd: int
    ssthresh: int

    def on_ack(self, acked_bytes: int, now: float, srtt: float | None, in_recovery: bool) -> None:
        ...

    def on_enter_recovery(self, now: float, flight_size: int) -> None:
        ...

    def on_exit_recovery(self, now: float) -> None:
        ...

    def on_rto(self, now: float, flight_size: int) -> None:
        ...

    def on_idle_restart(self, now: float, rto: float) -> None:
        ...

    def on_delivery(self, now: float, sacked: int, inflight: int, rtt: float | None,
                    app_limited: bool) -> None:
        """Every ACK, when ``samples_delivery``: the bytes SACKed now, in flight,
        the latest RTT sample, whether the application limited the flight."""
        ...

    def info(self) -> dict:
        """What ``Connection.info()`` shows of the controller beyond cwnd and ssthresh."""
        ...


class Reno:
    """RFC 5681 slow start and congestion avoidance with RFC 6582 (NewReno) recovery.

    Both phases count bytes (RFC 3465): slow start grows by
    ``min(acked, 2*SMSS)`` per ACK (§2.2, L = 2*SMSS); congestion avoidance
    grows by one SMSS each time a full ``cwnd`` of bytes has been
    acknowledged (§2.1), i.e. one SMSS per RTT independent of delayed ACKs.
    """

    name = "reno"
    samples_delivery = False      # on_delivery is for model-based controllers (BBR)

    __slots__ = ("_bytes_acked", "_rto_pending", "cwnd", "min_ssthresh", "mss", "ssthresh")

    def __init__(self, mss: int,
                 min_ssthresh_segments: int = DEFAULT_MIN_SSTHRESH_SEGMENTS) -> None:
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss}")
        check_min_ssthresh(min_ssthresh_segments)
        self.mss = mss
        self.min_ssthresh = min_ssthresh_segments * mss  # bytes
        self.cwnd = initial_window(mss)  # RFC 5681 §3.1 / RFC 6928
        self.ssthresh = INFINITE_SSTHRESH
        self._bytes_acked = 0
        # True between an RTO and the next ACK of new data: a second RTO for
        # the same segment keeps ssthresh (RFC 5681 §3.1, after equation 4).
        self._rto_pending = False

    # -- growth ------------------------------------------------------------
    def on_ack(self, acked_bytes: int, now: float, srtt: float | None, in_recovery: bool) -> None:
        if acked_bytes <= 0:
            return
        self._rto_pending = False
        if in_recovery:
            return
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            # RFC 5681 §3.1 slow start, RFC 3465 §2.2 byte counting with L=2*SMSS;
            # stop at ssthresh (cwnd == ssthresh then continues in CA).
            cwnd += min(acked_bytes, ABC_LIMIT_SEGMENTS * self.mss)
            self.cwnd = min(cwnd, self.ssthresh)
            return
        self._congestion_avoidance(acked_bytes, now, srtt)

    def _congestion_avoidance(self, acked_bytes: int, now: float, srtt: float | None) -> None:
        # RFC 5681 §3.1 congestion avoidance with RFC 3465 §2.1 byte counting:
        # +SMSS once a whole cwnd of bytes has been acknowledged.
        self._bytes_acked += acked_bytes
        if self._bytes_acked >= self.cwnd:
            self._bytes_acked -= self.cwnd
            self.cwnd += self.mss

    # -- loss --------------------------------------------------------------
    def _reduced_ssthresh(self, flight_size: int) -> int:
        return max(flight_size // 2, self.min_ssthresh)

    def on_enter_recovery(self, now: float, flight_size: int) -> None:
        """Fast retransmit (RFC 5681 §3.2 step 2, RFC 6582 §3.2 step 2).

        ``ssthresh = max(FlightSize/2, min_ssthresh)`` and ``cwnd = ssthresh``
        (no +3*SMSS inflation: see the module docstring) -- except that a
        loss never raises cwnd: a window below the floor (slow start after an
        RTO) stays as it is and grows towards ssthresh afterwards.
        """
        self.ssthresh = self._reduced_ssthresh(flight_size)
        self.cwnd = self._capped(self.ssthresh)
        self._bytes_acked = 0

    def _capped(self, target: int) -> int:
        """``target``, but no more than cwnd already is (and at least 2*SMSS)."""
        return min(target, max(self.cwnd, RFC5681_MIN_SSTHRESH_SEGMENTS * self.mss))

    def on_exit_recovery(self, now: float) -> None:
        """Full ACK (RFC 6582 §3.2 step 5, option 2): ``cwnd = ssthresh`` (deflating
        any inflation; a window held below the floor stays, see on_enter_recovery)."""
        self.cwnd = self._capped(self.ssthresh)
        self._bytes_acked = 0

    def on_rto(self, now: float, flight_size: int) -> None:
        """RFC 5681 §3.1: ssthresh per equation (4), cwnd = LW = 1 SMSS.

        ssthresh is only reduced for the first timeout of a segment; repeated
        timeouts before any new data is acknowledged keep it (RFC 5681 §3.1).
        """
        if not self._rto_pending:
            self.ssthresh = self._reduced_ssthresh(flight_size)
            self._rto_pending = True
        self.cwnd = self.mss
        self._bytes_acked = 0

    def on_idle_restart(self, now: float, rto: float) -> None:
        """RFC 5681 §4.1: after an idle period longer than RTO, cwnd = min(IW, cwnd)."""
        self.cwnd = min(self.cwnd, initial_window(self.mss))
        self._bytes_acked = 0

    def on_delivery(self, now: float, sacked: int, inflight: int, rtt: float | None,
                    app_limited: bool) -> None:
        """Not called (``samples_delivery`` is False): loss-based."""

    def info(self) -> dict:
        """Nothing beyond cwnd and ssthresh."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cwnd={self.cwnd}, ssthresh={self.ssthresh}, mss={self.mss})"


class Cubic(Reno):
    """CUBIC (RFC 9438), with byte-valued cwnd.

    Slow start, the loss window after an RTO and idle restart are Reno's
    (RFC 9438 §4.8, §4.10 without HyStart++). In congestion avoidance the
    window follows W_cubic(t) = C*(t-K)**3 + W_max (§4.2, in segments),
    approaching W_max concavely (§4.5) and probing beyond it convexly
    (§4.6), but never below the Reno-friendly estimate W_est (§4.3).
    """

    name = "cubic"

    __slots__ = ("_after_rto", "_cwnd_frac", "_epoch_start", "_k", "_w_est", "_w_max")

    def __init__(self, mss: int,
                 min_ssthresh_segments: int = DEFAULT_MIN_SSTHRESH_SEGMENTS) -> None:
        super().__init__(mss, min_ssthresh_segments)
        self._w_max = 0.0  # bytes: cwnd just before the last reduction (§4.6)
        self._k = 0.0  # seconds (§4.2 equation 2)
        self._epoch_start: float | None = None  # t_epoch: start of this CA stage
        self._w_est = 0.0  # bytes: Reno-friendly estimate (§4.3)
        self._cwnd_frac = 0.0  # fractional bytes not yet added to cwnd
        self._after_rto = False

    @property
    def w_max(self) -> float:
        return self._w_max

    @property
    def k(self) -> float:
        return self._k

    def w_cubic(self, t: float) -> float:
        """RFC 9438 §4.2 equation (1) in bytes, t seconds after the epoch start."""
        d = t - self._k
        return CUBIC_C * d * d * d * self.mss + self._w_max

    def _start_epoch(self, now: float) -> None:
        cwnd = self.cwnd
        self._epoch_start = now
        self._cwnd_frac = 0.0
        self._w_est = float(cwnd)  # §4.3: W_est = cwnd_epoch
        if self._after_rto or self._w_max <= cwnd:
            # §4.8: first CA stage after a timeout: K = 0, W_max = cwnd_epoch.
            # Likewise when slow start overshot the old W_max (no plateau to approach).
            self._after_rto = False
            self._w_max = float(cwnd)
            self._k = 0.0
        else:
            # §4.2 equation (2): K = cbrt((W_max - cwnd_epoch) / C), in segments.
            self._k = ((self._w_max - cwnd) / (CUBIC_C * self.mss)) ** (1.0 / 3.0)

    def _congestion_avoidance(self, acked_bytes: int, now: float, srtt: float | None) -> None:
        if self._epoch_start is None:
            self._start_epoch(now)
        cwnd = self.cwnd
        t = now - self._epoch_start  # type: ignore[operator]
        rtt = srtt if srtt is not None else 0.0
        # §4.3: W_est += alpha_cubic * segments_acked / cwnd (segments); alpha
        # becomes 1 once W_est has reached the window before the reduction.
        alpha = 1.0 if self._w_est >= self._w_max else CUBIC_ALPHA
        self._w_est += alpha * self.mss * acked_bytes / cwnd
        if self.w_cubic(t) < self._w_est:
            # §4.3 Reno-friendly region: cwnd = W_est (never shrinking cwnd).
            new = max(self._w_est, cwnd + self._cwnd_frac)
        else:
            # §4.4/§4.5: target = W_cubic(t + RTT), clamped to [cwnd, 1.5*cwnd];
            # cwnd += (target - cwnd) / cwnd per segment acknowledged.
            target = self.w_cubic(t + rtt)
            if target < cwnd:
                target = cwnd
            elif target > 1.5 * cwnd:
                target = 1.5 * cwnd
            new = cwnd + self._cwnd_frac + acked_bytes * (target - cwnd) / cwnd
        whole = int(new)
        if whole > cwnd:
            self.cwnd = whole
            self._cwnd_frac = new - whole
        else:
            self._cwnd_frac = new - cwnd

    def _reduced_ssthresh(self, flight_size: int) -> int:
        # §4.6: ssthresh = flight_size * beta_cubic, at least min_ssthresh.
        return max(int(flight_size * CUBIC_BETA), self.min_ssthresh)

    def _note_loss(self) -> None:
        cwnd = float(self.cwnd)
        # §4.7 fast convergence: a window that stopped short of the previous
        # W_max releases bandwidth to newer flows.
        if cwnd < self._w_max:
            self._w_max = cwnd * (1.0 + CUBIC_BETA) / 2.0
        else:
            self._w_max = cwnd
        self._epoch_start = None

    def on_enter_recovery(self, now: float, flight_size: int) -> None:
        """§4.6: W_max (with §4.7 fast convergence), ssthresh = 0.7*flight, cwnd = ssthresh."""
        self._note_loss()
        self._after_rto = False
        super().on_enter_recovery(now, flight_size)

    def on_exit_recovery(self, now: float) -> None:
        super().on_exit_recovery(now)
        self._epoch_start = None

    def on_rto(self, now: float, flight_size: int) -> None:
        """§4.8: Reno's loss window; ssthresh with beta_cubic; next CA stage from K = 0."""
        if not self._rto_pending:
            self._note_loss()
        super().on_rto(now, flight_size)
        self._epoch_start = None
        self._after_rto = True

    def on_idle_restart(self, now: float, rto: float) -> None:
        super().on_idle_restart(now, rto)
        self._epoch_start = None


_ALGORITHMS: dict[str, type[Reno]] = {"cubic": Cubic, "reno": Reno}
ALGORITHMS = tuple(sorted((*_ALGORITHMS, "bbr")))


def check_min_ssthresh(segments: int) -> None:
    """2 (RFC 5681 §3.1) to 4 (the default): a higher floor would let a loss
    leave a small window unreduced, i.e. switch congestion control off."""
    if (not isinstance(segments, int) or isinstance(segments, bool)
            or not RFC5681_MIN_SSTHRESH_SEGMENTS <= segments <= DEFAULT_MIN_SSTHRESH_SEGMENTS):
        raise ValueError(f"min_ssthresh must be {RFC5681_MIN_SSTHRESH_SEGMENTS}.."
                         f"{DEFAULT_MIN_SSTHRESH_SEGMENTS} segments (RFC 5681 §3.1 says "
                         f"{RFC5681_MIN_SSTHRESH_SEGMENTS}), got {segments!r}")


def make_congestion_control(name: str, mss: int,
                            min_ssthresh_segments: int = DEFAULT_MIN_SSTHRESH_SEGMENTS,
                            ) -> CongestionControl:
    """A new controller by name: ``"reno"`` (NewReno), ``"cubic"`` (default in
    Linux) or ``"bbr"`` (core/bbr.py; its window floor is always four segments)."""
    if name == "bbr":
        from tcpstack.core.bbr import Bbr  # bbr.py builds on this module

        check_min_ssthresh(min_ssthresh_segments)
        return Bbr(mss)
    try:
        cls = _ALGORITHMS[name]
    except KeyError:
        raise ValueError(
            f"unknown congestion control {name!r}; choose one of: {', '.join(ALGORITHMS)}"
        ) from None
    return cls(mss, min_ssthresh_segments)
