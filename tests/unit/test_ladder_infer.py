"""Ladder model: relative numbering, labels, state inference and segment notes."""

from __future__ import annotations

from tcpstack.core.state import State
from tcpstack.ladder.build import WireSegment, ladder_from_segments
from tcpstack.ladder.labels import Numbering, flag_word, segment_label
from tcpstack.ladder.model import SegmentItem
from tcpstack.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment

C = ("10.7.0.1", 40000)
S = ("10.7.0.2", 7)
CI, SI = 4_294_967_000, 5000          # the client's ISN wraps around 2**32


def seg(src, dst, seq, ack, flags, win=1000, payload=b"", **opts) -> TcpSegment:
    return TcpSegment(src[1], dst[1], seq % 2**32, ack % 2**32, flags, win,
                      options=TcpOptions(**opts), payload=payload)


def w(t, src, dst, s, dropped=False) -> WireSegment:
    return WireSegment(t, src, dst, s, dropped)


def handshake(t=0.0):
    return [
        w(t, C, S, seg(C, S, CI, 0, SYN, 64240, mss=1460, wscale=7, sack_permitted=True)),
        w(t + .1, S, C, seg(S, C, SI, CI + 1, SYN | ACK, 65535, mss=1460, wscale=2)),
        w(t + .2, C, S, seg(C, S, CI + 1, SI + 1, ACK, 502)),
    ]


def active_close(t=1.0):
    return [
        w(t, C, S, seg(C, S, CI + 1, SI + 1, FIN | ACK)),
        w(t + .1, S, C, seg(S, C, SI + 1, CI + 2, ACK)),
        w(t + .2, S, C, seg(S, C, SI + 1, CI + 2, FIN | ACK)),
        w(t + .3, C, S, seg(C, S, CI + 2, SI + 2, ACK)),
    ]


def test_flag_words():
    assert flag_word(SYN) == "SYN"
    assert flag_word(SYN | ACK) == "SYN-ACK"
    assert flag_word(FIN | ACK) == "FIN+ACK"
    assert flag_word(PSH | ACK) == "PSH+ACK"
    assert flag_word(RST) == "RST"
    assert flag_word(0) == "none"


def test_handshake_states_inferred_on_both_sides():
    ladder = ladder_from_segments(handshake())
    assert [life.name for life in ladder.lifelines] == ["10.7.0.1:40000", "10.7.0.2:7"]
    assert ladder.states(0) == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED]
    assert ladder.states(1) == [State.LISTEN, State.SYN_RECEIVED, State.ESTABLISHED]
    assert all(it.inferred for it in ladder.items if hasattr(it, "inferred"))


def test_syn_received_is_written_after_the_syn_not_after_the_syn_ack():
    ladder = ladder_from_segments(handshake())
    kinds = [(type(it).__name__, getattr(it, "new", None)) for it in ladder.items]
    assert kinds[:5] == [("StateItem", State.CLOSED), ("StateItem", State.LISTEN),
                         ("SegmentItem", None), ("StateItem", State.SYN_SENT),
                         ("StateItem", State.SYN_RECEIVED)]


def test_four_way_close():
    ladder = ladder_from_segments(handshake() + active_close())
    assert ladder.states(0)[-3:] == [State.FIN_WAIT_1, State.FIN_WAIT_2, State.TIME_WAIT]
    assert ladder.states(1)[-3:] == [State.CLOSE_WAIT, State.LAST_ACK, State.CLOSED]


def test_fin_wait_1_straight_to_time_wait_on_fin_ack():
    close = [
        w(1.0, C, S, seg(C, S, CI + 1, SI + 1, FIN | ACK)),
        w(1.1, S, C, seg(S, C, SI + 1, CI + 2, FIN | ACK)),
        w(1.2, C, S, seg(C, S, CI + 2, SI + 2, ACK)),
    ]
    ladder = ladder_from_segments(handshake() + close)
    assert ladder.states(0)[-2:] == [State.FIN_WAIT_1, State.TIME_WAIT]
    assert ladder.states(1)[-3:] == [State.CLOSE_WAIT, State.LAST_ACK, State.CLOSED]


def test_simultaneous_close_goes_through_closing():
    close = [
        w(1.0, C, S, seg(C, S, CI + 1, SI + 1, FIN | ACK)),
        w(1.0, S, C, seg(S, C, SI + 1, CI + 1, FIN | ACK)),
        w(1.1, C, S, seg(C, S, CI + 2, SI + 2, ACK)),
        w(1.1, S, C, seg(S, C, SI + 2, CI + 2, ACK)),
    ]
    ladder = ladder_from_segments(handshake() + close)
    for side in (0, 1):
        assert ladder.states(side)[-3:] == [State.FIN_WAIT_1, State.CLOSING, State.TIME_WAIT]


def test_simultaneous_open():
    open_ = [
        w(0.0, C, S, seg(C, S, CI, 0, SYN)),
        w(0.0, S, C, seg(S, C, SI, 0, SYN)),
        w(0.1, C, S, seg(C, S, CI, SI + 1, SYN | ACK)),
        w(0.1, S, C, seg(S, C, SI, CI + 1, SYN | ACK)),
    ]
    ladder = ladder_from_segments(open_)
    for side in (0, 1):
        assert ladder.states(side) == [State.CLOSED, State.SYN_SENT, State.SYN_RECEIVED,
                                       State.ESTABLISHED]


def test_refused_rst_from_closed_port():
    ladder = ladder_from_segments([
        w(0.0, C, S, seg(C, S, CI, 0, SYN)),
        w(0.1, S, C, seg(S, C, 0, CI + 1, RST | ACK, 0)),
    ])
    assert ladder.states(0) == [State.CLOSED, State.SYN_SENT, State.CLOSED]
    assert ladder.states(1) == [State.CLOSED]


def test_old_duplicate_syn_seen_after_the_real_one():
    old = CI - 1000
    ladder = ladder_from_segments([
        w(0.0, C, S, seg(C, S, CI, 0, SYN)),                  # the real SYN
        w(0.1, C, S, seg(C, S, old, 0, SYN)),                 # an old duplicate
        w(0.2, S, C, seg(S, C, SI, old + 1, SYN | ACK)),
        w(0.3, C, S, seg(C, S, old + 1, 0, RST)),
        w(0.4, S, C, seg(S, C, SI + 7, CI + 1, SYN | ACK)),
        w(0.5, C, S, seg(C, S, CI + 1, SI + 8, ACK)),
    ])
    assert ladder.states(0) == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED]
    assert ladder.states(1) == [State.LISTEN, State.SYN_RECEIVED, State.LISTEN,
                                State.SYN_RECEIVED, State.ESTABLISHED]


def test_old_duplicate_syn_rst_returns_listener_to_listen():
    old = CI - 1000
    ladder = ladder_from_segments([
        w(0.0, C, S, seg(C, S, old, 0, SYN)),                 # an old duplicate arrives first
        w(0.1, S, C, seg(S, C, SI, old + 1, SYN | ACK)),
        w(0.2, C, S, seg(C, S, CI, 0, SYN)),                  # the real SYN, delayed
        w(0.3, C, S, seg(C, S, old + 1, 0, RST)),             # not ours: RST, stay SYN-SENT
        w(0.4, S, C, seg(S, C, SI + 7, CI + 1, SYN | ACK)),
        w(0.5, C, S, seg(C, S, CI + 1, SI + 8, ACK)),
    ])
    assert [it.note for it in ladder.segments] == [""] * 6
    assert ladder.states(0) == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED]
    assert ladder.states(1) == [State.LISTEN, State.SYN_RECEIVED, State.LISTEN,
                                State.SYN_RECEIVED, State.ESTABLISHED]


def test_lost_segment_is_not_received_and_retransmission_is_named():
    close = active_close()
    lost = w(1.2, S, C, close[2].segment, dropped=True)
    again = w(1.25, S, C, close[2].segment)
    ladder = ladder_from_segments(handshake() + close[:2] + [lost, again, close[3]])
    items = ladder.segments
    assert items[5].dropped and not items[6].dropped
    assert items[6].note == "retransmission"
    # The client reaches TIME-WAIT on the retransmitted FIN, not on the lost one.
    from tcpstack.ladder.model import StateItem
    tw = [it for it in ladder.items if isinstance(it, StateItem) and it.new is State.TIME_WAIT]
    assert len(tw) == 1 and tw[0].time == 1.25


def test_keepalive_and_zero_window_probes_are_named():
    segs = [
        *handshake(),
        w(5.0, C, S, seg(C, S, CI, SI + 1, ACK)),              # SND.NXT-1, no data
        w(5.0, S, C, seg(S, C, SI + 1, CI + 1, ACK)),
        w(6.0, S, C, seg(S, C, SI + 1, CI + 1, ACK, 0)),       # server: window closed
        w(6.5, C, S, seg(C, S, CI, SI + 1, ACK)),              # client probes the zero window
    ]
    ladder = ladder_from_segments(segs)
    notes = [it.note for it in ladder.segments]
    assert notes[3] == "keepalive probe"
    assert notes[6] == "zero-window probe"
    assert notes[4] == notes[5] == ""


def test_relative_numbers_wrap_and_absolute_are_raw():
    ladder = ladder_from_segments(handshake() + active_close())
    rel, ab = Numbering(ladder), Numbering(ladder, absolute=True)
    fin: SegmentItem = ladder.segments[3]
    label = segment_label(fin, rel)
    assert label.main == ["FIN+ACK", "seq=1", "ack=1", "win=128000"]   # 1000 << 7
    label = segment_label(fin, ab)
    assert label.main[1] == f"seq={(CI + 1) % 2**32}"
    syn = segment_label(ladder.segments[0], rel)
    assert syn.main == ["SYN", "seq=0", "win=64240"]                  # SYN windows unscaled
    assert syn.extra == ["mss=1460", "wscale=7", "sack-ok"]


def test_window_unscaled_when_only_one_side_offers_wscale():
    segs = handshake()
    segs[1] = w(0.1, S, C, seg(S, C, SI, CI + 1, SYN | ACK, 65535, mss=1460))
    ladder = ladder_from_segments(segs)
    assert segment_label(ladder.segments[2], Numbering(ladder)).main[-1] == "win=502"


def test_sack_blocks_are_relative_and_timestamps_only_on_syns():
    segs = [
        *handshake(),
        w(1.0, S, C, seg(S, C, SI + 1, CI + 1, ACK, sack_blocks=((CI + 11, CI + 21),),
                         timestamps=(7, 9))),
    ]
    ladder = ladder_from_segments(segs)
    label = segment_label(ladder.segments[3], Numbering(ladder))
    assert label.extra == ["sack=11-21"]
    full = segment_label(ladder.segments[3], Numbering(ladder), all_timestamps=True)
    assert full.extra == ["sack=11-21", "ts=7/9"]
