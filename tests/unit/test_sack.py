"""The RFC 6675 SACK scoreboard, checked by hand and against a set-of-bytes model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpstack.core.sack import MAX_RANGES, SackScoreboard
from tcpstack.core.sentlog import SentLog
from tcpstack.seq import MOD, Seq

MSS = 100


def test_empty_scoreboard() -> None:
    sb = SackScoreboard()
    assert sb.sacked_bytes == 0
    assert sb.highest_sacked is None
    assert not sb.is_sacked(Seq(5), 1)
    assert not sb.is_lost(Seq(5), MSS)
    assert sb.next_seg(0, 1000, 0, MSS) is None
    assert sb.pipe(0, 1000, 0, MSS) == 1000


def test_merging_overlapping_and_touching_blocks() -> None:
    sb = SackScoreboard()
    assert sb.update(1000, 5000, [(1200, 1300)]) == 100
    assert sb.update(1000, 5000, [(1400, 1500), (1300, 1400)]) == 200  # touching: one range
    assert sb.ranges() == [(Seq(1200), Seq(1500))]
    assert sb.update(1000, 5000, [(1250, 1450)]) == 0  # already known
    assert sb.update(1000, 5000, [(1100, 1600)]) == 200
    assert sb.ranges() == [(Seq(1100), Seq(1600))]
    assert sb.update(1000, 5000, [(2000, 2100), (1800, 1900)]) == 200
    assert sb.ranges() == [(Seq(1100), Seq(1600)), (Seq(1800), Seq(1900)), (Seq(2000), Seq(2100))]
    assert sb.update(1000, 5000, [(1550, 2050)]) == 300  # bridges all three
    assert sb.ranges() == [(Seq(1100), Seq(2100))]
    assert sb.sacked_bytes == 1000
    assert sb.highest_sacked == Seq(2100)


def test_is_sacked_needs_the_whole_range() -> None:
    sb = SackScoreboard()
    sb.update(0, 1000, [(100, 200)])
    assert sb.is_sacked(Seq(100), 100)
    assert sb.is_sacked(Seq(150), 50)
    assert not sb.is_sacked(Seq(150), 51)
    assert not sb.is_sacked(Seq(99), 2)
    assert not sb.is_sacked(Seq(200), 1)


def test_invalid_and_stale_blocks_are_ignored() -> None:
    sb = SackScoreboard()
    added = sb.update(1000, 2000, [
        (900, 1000),    # D-SACK / below SND.UNA
        (1500, 2100),   # beyond SND.NXT
        (1600, 1600),   # empty
        (1700, 1650),   # inverted
        (1100, 1100 + (1 << 31) + 5),  # absurd length
    ])
    assert added == 0
    assert sb.sacked_bytes == 0
    # straddling SND.UNA is clipped
    assert sb.update(1000, 2000, [(900, 1100)]) == 100
    assert sb.ranges() == [(Seq(1000), Seq(1100))]


def test_advance_drops_acknowledged_ranges() -> None:
    sb = SackScoreboard()
    sb.update(0, 10_000, [(100, 200), (300, 400), (500, 600)])
    sb.advance(350)
    assert sb.ranges() == [(Seq(350), Seq(400)), (Seq(500), Seq(600))]
    assert sb.sacked_bytes == 150
    sb.advance(100)  # an old ACK: nothing moves
    assert sb.sacked_bytes == 150
    sb.update(600, 10_000, [])
    assert sb.sacked_bytes == 0
    assert len(sb) == 0


def test_wrap_around_2_32() -> None:
    sb = SackScoreboard()
    una = Seq(MOD - 250)
    nxt = una + 1000
    sb.update(una, nxt, [(int(una + 100), int(una + 200)), (int(una + 300), int(una + 400))])
    assert sb.ranges() == [(una + 100, una + 200), (Seq(50), Seq(150))]
    assert sb.is_sacked(Seq(MOD - 1), 1) is False
    assert sb.is_sacked(Seq(MOD - 100), 50)
    assert sb.is_sacked(Seq(60), 10)
    sb.update(una, nxt, [(MOD - 150, 60)])  # block that itself wraps: joins both
    assert sb.ranges() == [(una + 100, Seq(150))]
    sb.advance(Seq(100))
    assert sb.ranges() == [(Seq(100), Seq(150))]
    assert sb.sacked_bytes == 50


def test_is_lost_by_ranges_or_bytes() -> None:
    # RFC 6675 §4 IsLost: DupThresh (3) discontiguous ranges or > 2*SMSS bytes above.
    sb = SackScoreboard()
    sb.update(0, 10_000, [(100, 200), (300, 400)])
    assert not sb.is_lost(Seq(0), MSS)  # 2 ranges, 200 bytes: not > 200
    sb.update(0, 10_000, [(500, 501)])
    assert sb.is_lost(Seq(0), MSS)  # 3 ranges
    assert not sb.is_lost(Seq(200), MSS)  # 2 ranges, 101 bytes above

    sb2 = SackScoreboard()
    sb2.update(0, 10_000, [(100, 301)])
    assert sb2.is_lost(Seq(0), MSS)  # 201 bytes > 2*MSS
    assert not sb2.is_lost(Seq(150), MSS)


def test_next_seg_rule_1_and_high_rxt() -> None:
    sb = SackScoreboard()
    # holes [0,100) [200,300) [400,500); SACKed [100,200) [300,400) [500,600)
    sb.update(0, 1000, [(100, 200), (300, 400), (500, 600)])
    assert sb.next_seg(0, 1000, 0, MSS) == (Seq(0), 100)
    assert sb.next_seg(0, 1000, 0, 40) == (Seq(0), 40)
    assert sb.next_seg(0, 1000, 40, MSS) == (Seq(40), 60)
    # [200,300): 2 ranges and 200 bytes above: not lost
    assert sb.next_seg(0, 1000, 100, MSS) is None
    # rule 3 offers it anyway when asked (no new data to send)
    assert sb.next_seg(0, 1000, 100, MSS, rule3=True) == (Seq(200), 100)
    # the tail above the highest SACK is never a NextSeg hole
    assert sb.next_seg(0, 1000, 600, MSS, rule3=True) is None


def test_pipe_matches_rfc_6675_example() -> None:
    sb = SackScoreboard()
    sb.update(0, 1000, [(100, 200), (300, 400), (500, 600)])
    # unSACKed: [0,100) lost, [200,300) [400,500) [600,1000) not lost
    assert sb.pipe(0, 1000, 0, MSS) == 100 + 100 + 400
    # after retransmitting [0,100): it counts as in flight again
    assert sb.pipe(0, 1000, 100, MSS) == 100 + 100 + 400 + 100


def test_range_count_is_bounded() -> None:
    sb = SackScoreboard()
    for i in range(MAX_RANGES + 50):
        sb.update(0, 1_000_000, [(10 + 4 * i, 12 + 4 * i)])
    assert len(sb) == MAX_RANGES
    assert sb.sacked_bytes == 2 * MAX_RANGES
    assert sum(e - s for s, e in sb.ranges()) == sb.sacked_bytes


def test_clear() -> None:
    sb = SackScoreboard()
    sb.update(0, 1000, [(100, 200)])
    sb.clear()
    assert sb.sacked_bytes == 0
    assert sb.ranges() == []


# -- the model ---------------------------------------------------------------

def signed(d: int) -> int:
    d %= MOD
    return d - MOD if d >= MOD // 2 else d


class NaiveBoard:
    """Sacked bytes as a set of offsets from the current SND.UNA."""

    def __init__(self, una: int) -> None:
        self.una = una
        self.bytes: set[int] = set()

    def update(self, una: int, nxt: int, blocks: list[tuple[int, int]]) -> None:
        d = signed(una - self.una)
        if d > 0:
            self.bytes = {b - d for b in self.bytes if b >= d}
            self.una = una % MOD
        top = signed(nxt - self.una)
        for left, right in blocks:
            lo, hi = signed(left - self.una), signed(right - self.una)
            if hi <= 0 or hi > top or lo >= hi:
                continue
            self.bytes.update(range(max(lo, 0), hi))

    def runs(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for b in sorted(self.bytes):
            if out and out[-1][1] == b:
                out[-1] = (out[-1][0], b + 1)
            else:
                out.append((b, b + 1))
        return out

    def is_lost(self, off: int, mss: int) -> bool:
        above = sum(1 for b in self.bytes if b > off)
        ranges = sum(1 for _, e in self.runs() if e - 1 > off)
        return ranges >= 3 or above > 2 * mss

    def pipe(self, top: int, rxt: int, mss: int) -> int:
        total = 0
        for off in range(top):
            if off in self.bytes:
                continue
            if not self.is_lost(off, mss):
                total += 1
            if off < rxt:
                total += 1
        return total

    def next_seg(self, rxt: int, mss: int) -> tuple[int, int] | None:
        if not self.bytes:
            return None
        high = max(self.bytes)
        off = max(rxt, 0)
        while off < high:
            if off not in self.bytes and self.is_lost(off, mss):
                n = 0
                while n < mss and off + n not in self.bytes:
                    n += 1
                return off, n
            off += 1
        return None


SPAN = 400
BLOCK = st.tuples(st.integers(-40, SPAN + 20), st.integers(-10, 120))
ACK = st.tuples(st.integers(0, 60), st.lists(BLOCK, max_size=4))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 500, MOD - 1)),
    st.lists(ACK, min_size=1, max_size=12),
    st.integers(5, 60),
    st.integers(-20, SPAN),
)
def test_scoreboard_matches_naive_model(
    start: int, acks: list[tuple[int, list[tuple[int, int]]]], mss: int, rxt_off: int
) -> None:
    sb = SackScoreboard()
    sb.advance(start)
    model = NaiveBoard(start)
    una = start
    nxt = (start + SPAN) % MOD
    for advance, rel_blocks in acks:
        una = (una + advance) % MOD
        if signed(nxt - una) < 0:
            nxt = una
        blocks = [((una + lo) % MOD, (una + lo + length) % MOD) for lo, length in rel_blocks]
        sb.update(Seq(una), Seq(nxt), blocks)
        model.update(una, nxt, blocks)
        assert sb.sacked_bytes == len(model.bytes)
        assert [(int(s - Seq(una)), int(e - Seq(una))) for s, e in sb.ranges()] == model.runs()

    top = signed(nxt - una)
    for off in range(-5, top + 5, 7):
        assert sb.is_lost(Seq(una + off), mss) == model.is_lost(off, mss), off
        if 0 <= off < top:
            assert sb.is_sacked(Seq(una + off), 1) == (off in model.bytes)
    rxt = min(max(rxt_off, 0), top)
    assert sb.pipe(Seq(una), Seq(nxt), Seq(una + rxt_off), mss) == model.pipe(top, rxt, mss)
    expected = model.next_seg(rxt_off, mss)
    got = sb.next_seg(Seq(una), Seq(nxt), Seq(una + rxt_off), mss)
    assert got == (None if expected is None else (Seq(una + expected[0]), expected[1]))


# -- SentLog (RFC 8985 RACK) ------------------------------------------------------
def test_sent_log_retransmission_moves_to_the_tail_and_splits_its_entry():
    log = SentLog()
    log.on_send(1000, 4000, 0.0, False)           # one 3000-byte super-segment
    log.on_send(4000, 5000, 0.0, False)
    log.on_send(2000, 3000, 1.0, True)            # its middle retransmitted
    assert [(int(s), int(e), t, r) for s, e, t, r, _ in log.entries()] == [
        (1000, 2000, 0.0, False), (3000, 4000, 0.0, False), (4000, 5000, 0.0, False),
        (2000, 3000, 1.0, True)]
    assert log.pipe() == 4000


def test_sent_log_detects_loss_by_time_and_order():
    log = SentLog()
    sb = SackScoreboard()
    for i in range(4):
        log.on_send(i * 100, (i + 1) * 100, 0.0, False)
    sb.update(0, 400, [(100, 200)])
    log.on_ack(0, sb, 1.0)                        # segment 1 delivered, RACK.rtt = 1.0
    assert log.rtt == 1.0 and log.min_rtt == 1.0
    assert log.detect_loss(1.0, 0.25) == 0.25     # segment 0: wait reo_wnd
    assert log.first_lost() is None
    assert log.detect_loss(1.25, 0.25) == 0.0
    assert log.first_lost() == (Seq(0), 100)
    assert log.pipe() == 200                      # segments 2 and 3
    log.on_send(0, 100, 2.0, True)                # resent
    assert log.first_lost() is None and log.pipe() == 300
    sb.update(0, 400, [(300, 400), (100, 200)])   # segment 3, sent before the resend
    log.on_ack(0, sb, 2.5)
    log.detect_loss(2.5, 0.0)
    assert log.first_lost() == (Seq(200), 100)    # 2 is lost; the resend is not


def test_sent_log_wraps_around_the_sequence_space():
    log = SentLog()
    start = MOD - 150
    log.on_send(start, start + 100, 0.0, False)
    log.on_send(start + 100, start + 200, 0.0, False)
    log.on_ack(start + 100, None, 0.5)
    assert [(int(s), int(e)) for s, e, *_ in log.entries()] == [(MOD - 50, 50)]
    assert log.pipe() == 100
