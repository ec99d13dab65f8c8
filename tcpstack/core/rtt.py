"""Retransmission timeout estimation, RFC 6298.

A pure calculator: the connection measures round-trip samples (Karn's rule,
RFC 6298 §3, is the caller's business: never sample a retransmitted segment
unless timestamps disambiguate it) and feeds them in; ``rto`` is the timeout
to arm next, including the exponential backoff of §5.5.
"""

from __future__ import annotations

# RFC 6298 §2.3: alpha = 1/8, beta = 1/4 (Jacobson 1988), K = 4.
ALPHA = 1.0 / 8.0
BETA = 1.0 / 4.0
K = 4

# RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been made ...
# the sender SHOULD set RTO <- 1 second".
INITIAL_RTO = 1.0
# RFC 6298 §2.4: "Whenever RTO is computed, if it is less than 1 second, then
# the RTO SHOULD be rounded up to 1 second." Linux uses 200 ms (TCP_RTO_MIN);
# so do we by default; pass min_rto=1.0 for the RFC's value.
MIN_RTO = 0.2
# RFC 6298 §2.5: "A maximum value MAY be placed on RTO provided it is at least
# 60 seconds." Linux: TCP_RTO_MAX = 120 s.
MAX_RTO = 120.0
# RFC 6298 §2.2/§2.3: G, the clock granularity, in seconds.
CLOCK_GRANULARITY = 0.001
SYN_LOSS_RTO = 3.0   # RFC 6298 §5.7: the RTO once data starts after a lost SYN


class RttEstimator:
    """SRTT / RTTVAR / RTO state of one connection (RFC 6298 §2)."""

    __slots__ = ("_base_rto", "backoffs", "granularity", "max_rto", "min_rto", "retries",
                 "rttvar", "srtt")

    def __init__(
        self,
        initial_rto: float = INITIAL_RTO,
        min_rto: float = MIN_RTO,
        max_rto: float = MAX_RTO,
        granularity: float = CLOCK_GRANULARITY,
    ) -> None:
        if min_rto <= 0 or max_rto < min_rto:
            raise ValueError(f"need 0 < min_rto <= max_rto, got {min_rto}, {max_rto}")
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.granularity = granularity
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.backoffs = 0     # the RTO's doubling (§5.5), kept until a valid sample
        self.retries = 0      # timeouts since the peer last acknowledged new data
        # RFC 6298 §2.1: RTO before any sample.
        self._base_rto = initial_rto

    def sample(self, rtt: float) -> None:
        """Take one RTT measurement R (seconds) and recompute RTO.

        Also clears the backoff: RFC 6298 §5.7 keeps the backed-off value only
        until a new RTT sample is taken, after which RTO is recomputed.
        """
        if rtt < 0:
            rtt = 0.0
        srtt = self.srtt
        if srtt is None:
            # RFC 6298 §2.2: first measurement R:
            #   SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, K*RTTVAR)
            srtt = rtt
            rttvar = rtt / 2.0
        else:
            # RFC 6298 §2.3: subsequent measurement R' (RTTVAR first, using
            # the old SRTT):
            #   RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
            #   SRTT   <- (1 - alpha) * SRTT + alpha * R'
            rttvar = (1.0 - BETA) * self.rttvar + BETA * abs(srtt - rtt)  # type: ignore[operator]
            srtt = (1.0 - ALPHA) * srtt + ALPHA * rtt
        self.srtt = srtt
        self.rttvar = rttvar
        self._base_rto = srtt + max(self.granularity, K * rttvar)
        self.backoffs = 0

    @property
    def rto(self) -> float:
        """Current RTO in seconds: base RTO x 2**backoffs, clamped (RFC 6298 §2.4, §2.5)."""
        value = self._base_rto
        if value < self.min_rto:  # §2.4
            value = self.min_rto
        if self.backoffs:
            value *= 1 << min(self.backoffs, 62)  # §5.5
        if value > self.max_rto:  # §2.5
            value = self.max_rto
        return value

    def backoff(self) -> None:
        """The retransmission timer expired: double RTO (RFC 6298 §5.5), capped at max_rto.

        ``retries`` counts the timeouts since the last progress (the caller gives
        up on it); the RTO itself stops growing at ``max_rto``.
        """
        self.backoffs += 1
        self.retries += 1

    def progress(self) -> None:
        """New data was acknowledged: the retry count starts again. The doubled
        RTO stays until a valid RTT sample (Karn's algorithm, RFC 6298 §5 note;
        Linux alike: "only reset backoff on valid RTT measurement")."""
        self.retries = 0

    def fall_back_after_syn_loss(self) -> None:
        """RFC 6298 §5.7: a SYN (or SYN-ACK) timed out and no RTT was measured:
        data transmission starts with an RTO of 3 s."""
        if self.srtt is None and self._base_rto < SYN_LOSS_RTO:
            self._base_rto = SYN_LOSS_RTO

    def reset_backoff(self) -> None:
        """Drop the backoff and the retry count without a sample (the handshake is done)."""
        self.backoffs = 0
        self.retries = 0

    def __repr__(self) -> str:
        return (
            f"RttEstimator(srtt={self.srtt}, rttvar={self.rttvar}, rto={self.rto:.3f}, "
            f"backoffs={self.backoffs})"
        )
