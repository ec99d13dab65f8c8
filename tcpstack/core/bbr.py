"""BBR congestion control (version 1), after draft-cardwell-iccrg-bbr-congestion-control-00
and Linux's ``net/ipv4/tcp_bbr.c``: a model of the path instead of a reaction to loss.

BBR estimates the bottleneck bandwidth (``btl_bw``: the largest delivery rate
of the last ``BW_WINDOW_ROUNDS`` round trips) and the round-trip propagation
time (``rt_prop``: the least RTT of the last ``RTPROP_WINDOW`` seconds) and
keeps ``cwnd_gain * btl_bw * rt_prop`` (the bandwidth-delay product, BDP)
plus a few TSO super-segments in flight. A random loss changes neither
estimate, so unlike Reno and CUBIC (RFC 5681, RFC 9438) it does not shrink
the window: on a lossy path with room to spare it keeps the pipe full.

The phases (draft §4.3): STARTUP doubles the delivery rate each round
(cwnd gain 2/ln 2) until three rounds in a row grew it by less than 25%;
DRAIN lets the queue STARTUP built drain (cwnd down to one BDP); PROBE_BW
keeps two BDPs in flight; PROBE_RTT, when ``rt_prop`` has not been refreshed
for ten seconds, holds four segments in flight for 200 ms and one round
trip so the queue empties and the true propagation time shows.

Loss (draft §4.5.4): the first round of a recovery conserves packets (the
window is what is in flight plus what was just delivered), after it the
window regrows to its target; when recovery ends the window is restored to
at least what it was. After a retransmission timeout the window is one
segment and regrows by what is delivered, as Linux does.

Difference from the draft and Linux: the core has no pacing timer, so this
BBR is window-limited only (the pacing gains of DRAIN and PROBE_BW's cycle
do not exist; DRAIN drains through the window). Linux paces (internally or
with fq).

The samples come from ``on_delivery`` (called by the connection on every
ACK, after ``on_ack``): the bytes now SACKed, the bytes in flight, the RTT of
the latest delivered segment and whether the application, not the window,
limited the flight. A round trip ends when the bytes delivered reach what
was in flight when it began; its delivery rate is one bandwidth sample (an
application-limited round only counts when it raises the estimate).
"""

from __future__ import annotations

from tcpstack.core.congestion import INFINITE_SSTHRESH, initial_window

# draft §4.3.1 / tcp_bbr.c: the gains.
HIGH_GAIN = 2.885                 # 2/ln(2): doubles the delivery rate each round
PROBE_BW_CWND_GAIN = 2.0
DRAIN_CWND_GAIN = 1.0             # no pacing: DRAIN drains through the window
# tcp_bbr.c bbr_full_bw_thresh / bbr_full_bw_cnt: the pipe is full when three
# rounds in a row grew the bandwidth by less than 25%.
FULL_BW_GROWTH = 1.25
FULL_BW_ROUNDS = 3
BW_WINDOW_ROUNDS = 10             # bbr_bw_rtts: the max filter's length
RTPROP_WINDOW = 10.0              # bbr_min_rtt_win_sec
PROBE_RTT_TIME = 0.2              # bbr_probe_rtt_mode_ms
MIN_PIPE_SEGMENTS = 4             # bbr_cwnd_min_target
# tcp_bbr.c bbr_quantization_budget: three TSO super-segments on top of the
# BDP, each as much as 1 ms at the estimated rate, at most 64 KB (GSO's
# limit), at least two segments.
TSO_BUDGET_SEGMENTS = 3
TSO_GOAL_TIME = 0.001
TSO_GOAL_MAX = 65536
# tcp_bbr.c bbr_update_ack_aggregation: ACKs that come in bursts (a stretch
# ACK, a batch read at once) deliver more than the bandwidth estimate says in
# the time they cover; the largest such excess of the last 5-10 rounds is
# kept in flight as well (gain 1), at most 100 ms at the estimated rate and
# at most the window itself each time.
EXTRA_ACKED_ROUNDS = 5            # bbr_extra_acked_win_rtts (two slots: 5-10 rounds)
EXTRA_ACKED_MAX_TIME = 0.1        # bbr_extra_acked_max_us

STARTUP, DRAIN, PROBE_BW, PROBE_RTT = "startup", "drain", "probe_bw", "probe_rtt"


class Bbr:
    """BBR v1, window-limited. ``cwnd`` and ``ssthresh`` in bytes, as the other
    controllers; ``ssthresh`` stays "infinite" (BBR has none)."""

    name = "bbr"
    samples_delivery = True

    __slots__ = ("_acked", "_conservation_round", "_delivered", "_epoch_acked", "_epoch_start",
                 "_extra_acked", "_extra_max", "_extra_slot", "_floor", "_full_bw",
                 "_full_bw_rounds", "_iw", "_prior_cwnd", "_probe_rtt_done", "_round",
                 "_round_app_limited", "_round_delivered", "_round_end", "_round_start",
                 "_rt_prop_stamp", "_samples", "_target", "btl_bw", "cwnd", "min_ssthresh",
                 "mode", "mss", "rt_prop", "ssthresh")

    def __init__(self, mss: int, min_ssthresh_segments: int = MIN_PIPE_SEGMENTS) -> None:
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss}")
        self.mss = mss
        self.min_ssthresh = self._floor = MIN_PIPE_SEGMENTS * mss
        self.cwnd = self._iw = initial_window(mss)
        self.ssthresh = INFINITE_SSTHRESH
        self.mode = STARTUP
        self.btl_bw = 0.0                 # bytes per second
        self.rt_prop: float | None = None
        self._rt_prop_stamp = 0.0
        # (round, delivery rate), at most BW_WINDOW_ROUNDS: a list (a deque's
        # first block alone is 0.6 KiB, on every idle connection).
        self._samples: list[tuple[int, float]] = []
        self._acked = 0                   # bytes cumulatively acknowledged
        self._delivered = 0               # ... plus those SACKed now
        self._round = 0
        self._round_end = 0               # the round ends when delivered reaches this
        self._round_start: float | None = None
        self._round_delivered = 0
        self._round_app_limited = False
        self._full_bw = 0.0
        self._full_bw_rounds = 0
        self._conservation_round = -1     # packet conservation lasts until this round ends
        self._prior_cwnd = 0
        self._probe_rtt_done: float | None = None
        self._epoch_start = 0.0           # the ACK aggregation epoch
        self._epoch_acked = 0
        self._extra_acked = [0, 0]        # two slots of EXTRA_ACKED_ROUNDS rounds each
        self._extra_slot = 0
        self._extra_max = 0
        self._target = self._iw           # bdp(gain of the mode), kept current by _retarget

    # -- the model ---------------------------------------------------------------
    def bdp(self, gain: float) -> int:
        """``gain`` bandwidth-delay products plus the TSO budget (and, after
        STARTUP, the ACK aggregation excess), in bytes; the initial window
        while there is no estimate yet."""
        btl_bw = self.btl_bw
        if self.rt_prop is None or not btl_bw:
            return self._iw
        goal = min(max(btl_bw * TSO_GOAL_TIME, 2 * self.mss), TSO_GOAL_MAX)
        target = int(gain * btl_bw * self.rt_prop + TSO_BUDGET_SEGMENTS * goal)
        if self.mode is not STARTUP:
            target += int(min(self._extra_max, btl_bw * EXTRA_ACKED_MAX_TIME))
        return max(target, self._floor)

    def _retarget(self) -> None:
        """The model or the mode changed: the window's target follows."""
        mode = self.mode
        self._target = self.bdp(HIGH_GAIN if mode is STARTUP else
                                DRAIN_CWND_GAIN if mode is DRAIN else PROBE_BW_CWND_GAIN)

    def on_delivery(self, now: float, sacked: int, inflight: int, rtt: float | None,
                    app_limited: bool) -> None:
        """One ACK's sample: update the model, then the mode and the window."""
        delivered = self._acked + sacked
        if delivered > self._delivered:
            if self.btl_bw and not app_limited:
                # (An application-limited flight has no window to keep full.)
                self._aggregation(now, delivered - self._delivered)
            self._delivered = delivered
        if rtt is not None and rtt > 0:
            rt_prop = self.rt_prop
            if rt_prop is None or rtt < rt_prop:
                self.rt_prop = rtt
                self._rt_prop_stamp = now
                self._retarget()
            elif rtt == rt_prop:
                self._rt_prop_stamp = now
            elif now - self._rt_prop_stamp > RTPROP_WINDOW:
                # The estimate expired: take the new one, measure it again.
                self.rt_prop = rtt
                self._rt_prop_stamp = now
                if self.mode is not PROBE_RTT:
                    self._enter_probe_rtt(now)
                self._retarget()
        if app_limited:
            self._round_app_limited = True
        if self._round_start is None:
            self._start_round(now, inflight)
        elif self._delivered >= self._round_end:
            self._end_round(now, inflight)
        mode = self.mode
        if mode is DRAIN:
            if inflight <= self._target:         # the target is one BDP in DRAIN
                self.mode = PROBE_BW             # draft §4.3.3: the queue is gone
                self._retarget()
        elif mode is PROBE_RTT:
            self._probe_rtt(now, inflight)
            return
        # draft §4.2.3.5 / tcp_bbr.c bbr_set_cwnd (growth itself is in on_ack).
        if self._round <= self._conservation_round:
            if inflight + self.mss > self.cwnd:
                self.cwnd = inflight + self.mss  # packet conservation
        elif self.mode is not STARTUP or self._full_bw_rounds >= FULL_BW_ROUNDS:
            target = self._target
            if self.cwnd > target:
                self.cwnd = target

    def _aggregation(self, now: float, newly: int) -> None:
        """tcp_bbr.c bbr_update_ack_aggregation: how much more this epoch of
        ACKs delivered than ``btl_bw`` explains."""
        expected = self.btl_bw * (now - self._epoch_start)
        if self._epoch_acked <= expected:
            self._epoch_start = now           # ACKs at or below the rate: a new epoch
            self._epoch_acked = 0
            expected = 0.0
        self._epoch_acked += newly
        extra = int(self._epoch_acked - expected)
        if extra > self.cwnd:
            extra = self.cwnd
        slots = self._extra_acked
        slot = self._extra_slot
        if extra > slots[slot]:
            slots[slot] = extra
            if extra > self._extra_max:
                self._extra_max = extra
                if self.mode is not STARTUP:
                    self._retarget()

    def _start_round(self, now: float, inflight: int) -> None:
        self._round_start = now
        self._round_delivered = self._delivered
        self._round_end = self._delivered + max(inflight, 1)
        self._round_app_limited = False

    def _end_round(self, now: float, inflight: int) -> None:
        """draft §4.5.2: one delivery rate sample per round trip, the max filter."""
        assert self._round_start is not None
        elapsed = now - self._round_start
        self._round = round_ = self._round + 1
        app_limited = self._round_app_limited
        changed = False
        if elapsed > 0:
            rate = (self._delivered - self._round_delivered) / elapsed
            btl_bw = self.btl_bw
            # An application-limited round only counts when it raises the estimate
            # (it says nothing about the path otherwise): request/response
            # traffic ends a round at every ACK and mostly stops here.
            if not app_limited or rate > btl_bw:
                samples = self._samples
                samples.append((round_, rate))
                horizon = round_ - BW_WINDOW_ROUNDS
                expired_max = False
                while samples[0][0] <= horizon:
                    expired_max |= samples.pop(0)[1] >= btl_bw
                if rate >= btl_bw:
                    self.btl_bw = rate
                elif expired_max:
                    self.btl_bw = max(sample for _, sample in samples)
                changed = self.btl_bw != btl_bw
        if self.mode is STARTUP and not app_limited:
            # draft §4.3.2.2: is the pipe full?
            if self.btl_bw >= self._full_bw * FULL_BW_GROWTH:
                self._full_bw = self.btl_bw
                self._full_bw_rounds = 0
            else:
                self._full_bw_rounds += 1
                if self._full_bw_rounds >= FULL_BW_ROUNDS:
                    self.mode = DRAIN
                    changed = True
        if round_ % EXTRA_ACKED_ROUNDS == 0 and self._extra_max:
            # The aggregation filter's other slot starts over (5-10 rounds kept).
            self._extra_slot ^= 1
            self._extra_acked[self._extra_slot] = 0
            self._extra_max = max(self._extra_acked)
            changed = True
        if changed:
            self._retarget()
        self._round_start = now
        self._round_delivered = self._delivered
        self._round_end = self._delivered + (inflight if inflight > 0 else 1)
        self._round_app_limited = False

    def _probe_rtt(self, now: float, inflight: int) -> None:
        """draft §4.3.4: four segments in flight for 200 ms, then back."""
        if (self._probe_rtt_done is not None and now >= self._probe_rtt_done
                and inflight <= self._floor):
            self._probe_rtt_done = None
            self._rt_prop_stamp = now
            self.mode = PROBE_BW if self._full_bw_rounds >= FULL_BW_ROUNDS else STARTUP
            self._retarget()
            self.cwnd = max(self.cwnd, self._prior_cwnd)
        else:
            self.cwnd = self._floor

    def _enter_probe_rtt(self, now: float) -> None:
        self._prior_cwnd = max(self._prior_cwnd, self.cwnd)
        self.mode = PROBE_RTT
        self._probe_rtt_done = now + PROBE_RTT_TIME
        self.cwnd = self._floor

    # -- the events every controller takes --------------------------------------------
    def on_ack(self, acked_bytes: int, now: float, srtt: float | None, in_recovery: bool) -> None:
        """New data acknowledged: count it; grow towards the target (applied in
        ``on_delivery``). tcp_bbr.c bbr_set_cwnd: grow while below the target,
        and through the first window, before there is a model."""
        if acked_bytes <= 0:
            return
        self._acked += acked_bytes
        if self.mode is not PROBE_RTT and (self.cwnd < self._target or self._acked < self._iw):
            self.cwnd += acked_bytes

    def on_enter_recovery(self, now: float, flight_size: int) -> None:
        """draft §4.5.4: remember the window; conserve packets for one round."""
        self._prior_cwnd = self.cwnd
        self._conservation_round = self._round
        self.cwnd = max(flight_size, MIN_PIPE_SEGMENTS * self.mss)

    def on_exit_recovery(self, now: float) -> None:
        self._conservation_round = -1
        self.cwnd = max(self.cwnd, self._prior_cwnd)

    def on_rto(self, now: float, flight_size: int) -> None:
        """As Linux (tcp_enter_loss): one segment, regrowing by what is delivered."""
        self._prior_cwnd = max(self._prior_cwnd, self.cwnd)
        self._conservation_round = -1
        self.cwnd = self.mss

    def on_idle_restart(self, now: float, rto: float) -> None:
        """draft §4.2.3.4: after idle BBR keeps its window (it would pace at
        the estimated rate); nothing to do without pacing."""

    def info(self) -> dict:
        """The model, as ``ss -ti`` shows it (``bbr:(bw:...,mrtt:...)``): the mode,
        the bottleneck bandwidth (bytes/s), the propagation RTT (s) and the
        window's target."""
        return {"bbr": {"mode": self.mode, "btl_bw": round(self.btl_bw),
                        "rt_prop": self.rt_prop, "target": self._target}}

    def __repr__(self) -> str:
        return (f"Bbr(mode={self.mode}, cwnd={self.cwnd}, btl_bw={self.btl_bw:.0f}, "
                f"rt_prop={self.rt_prop}, mss={self.mss})")
