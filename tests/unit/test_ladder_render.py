"""Ladder renderers: terminal text (plain, colour, widths), SVG and HTML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tcpstack.core.events import TIMER_RETRANSMIT, TIMER_TIME_WAIT, EventKind, TraceEvent
from tcpstack.core.state import State
from tcpstack.ladder.build import WireSegment, ladder_from_segments, ladder_from_trace
from tcpstack.ladder.html import render_html
from tcpstack.ladder.svg import render_svg
from tcpstack.ladder.text import render_text
from tcpstack.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions, TcpSegment

K = ("10.7.0.1", 40000)      # the kernel: traced by nobody
U = ("10.7.0.2", 7)          # tcpstack: traced
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def seg(src, dst, seq, ack, flags, payload=b"", **opts) -> TcpSegment:
    return TcpSegment(src[1], dst[1], seq, ack, flags, 1000, options=TcpOptions(**opts),
                      payload=payload)


def ev(t, kind, **kw) -> TraceEvent:
    return TraceEvent(t, kind, U, kw.pop("remote", K), **kw)


def demo_events() -> list[TraceEvent]:
    """tcpstack's trace of a passive open, an echo and an active close by tcpstack."""
    S, IN, OUT, T = EventKind.STATE, EventKind.SEGMENT_IN, EventKind.SEGMENT_OUT, EventKind.TIMER
    return [
        TraceEvent(0.0, S, U, None, old_state=State.CLOSED, new_state=State.LISTEN),
        ev(1.0, IN, segment=seg(K, U, 100, 0, SYN, mss=1460, sack_permitted=True)),
        ev(1.0, S, old_state=State.LISTEN, new_state=State.SYN_RECEIVED),
        ev(1.0, OUT, segment=seg(U, K, 900, 101, SYN | ACK, mss=1460)),
        ev(1.001, IN, segment=seg(K, U, 101, 901, ACK)),
        ev(1.001, S, old_state=State.SYN_RECEIVED, new_state=State.ESTABLISHED),
        ev(1.002, IN, segment=seg(K, U, 101, 901, PSH | ACK, b"ping")),
        ev(1.002, OUT, segment=seg(U, K, 901, 105, PSH | ACK, b"ping")),
        ev(1.003, OUT, segment=seg(U, K, 905, 105, FIN | ACK)),
        ev(1.003, S, old_state=State.ESTABLISHED, new_state=State.FIN_WAIT_1),
        ev(1.203, T, timer=TIMER_RETRANSMIT),
        ev(1.203, OUT, segment=seg(U, K, 905, 105, FIN | ACK)),
        ev(1.204, IN, segment=seg(K, U, 105, 906, FIN | ACK)),
        ev(1.204, S, old_state=State.FIN_WAIT_1, new_state=State.TIME_WAIT),
        ev(1.204, OUT, segment=seg(U, K, 906, 106, ACK)),
        ev(3.204, T, timer=TIMER_TIME_WAIT),
        ev(3.204, S, old_state=State.TIME_WAIT, new_state=State.CLOSED),
    ]


def demo_ladder():
    return ladder_from_trace(demo_events(), roles={K: "kernel", U: "tcpstack"},
                             title="demo", explanation="A passive open and an echo.")


def test_trace_ladder_has_exact_and_inferred_states():
    ladder = demo_ladder()
    assert [life.role for life in ladder.lifelines] == ["kernel", "tcpstack"]
    assert ladder.states(1) == [State.CLOSED, State.LISTEN, State.SYN_RECEIVED, State.ESTABLISHED,
                                State.FIN_WAIT_1, State.TIME_WAIT, State.CLOSED]
    assert ladder.states(0) == [State.CLOSED, State.SYN_SENT, State.ESTABLISHED,
                                State.CLOSE_WAIT, State.LAST_ACK, State.CLOSED]
    assert ladder.timers(1) == [TIMER_RETRANSMIT, TIMER_TIME_WAIT]
    assert len(ladder.segments) == 9
    assert ladder.segments[6].note == "retransmission"


@pytest.mark.parametrize("width", [60, 80, 100, 120])
def test_plain_text_fits_the_width_and_shows_everything(width):
    text = render_text(demo_ladder(), width=width, header=True)
    assert "\x1b" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    for word in ("SYN seq=0 win=1000", "SYN-ACK seq=0 ack=1", "PSH+ACK seq=1 ack=1 len=4",
                 "mss=1460", "sack-ok", "~SYN-SENT", "~CLOSE-WAIT", "SYN-RECEIVED",
                 "FIN-WAIT-1", "TIME-WAIT", "timer: retransmission timeout",
                 "timer: 2MSL expired", "(retransmission)", "10.7.0.1:40000", "(kernel)",
                 "A passive open and an echo."):
        assert word in text, word


def test_text_arrows_point_the_right_way_and_time_is_on_the_left():
    lines = render_text(demo_ladder()).splitlines()
    syn = next(line for line in lines if " SYN seq=" in line)
    synack = next(line for line in lines if "SYN-ACK" in line)
    assert syn.rstrip().endswith(">|") and syn.startswith("1.0000")
    assert "|<" in synack and synack.rstrip().endswith("|")
    # Time is printed when it changes and not repeated.
    times = [line.split()[0] for line in lines if re.match(r"^\d+\.\d{4} ", line)]
    assert times == sorted(times) and len(times) == len(set(times))


def test_state_written_on_its_lifeline():
    renderer_lines = render_text(demo_ladder()).splitlines()
    header = renderer_lines[0]
    right_x = header.index("10.7.0.2:7") + len("10.7.0.2:7") // 2
    row = next(line for line in renderer_lines if "TIME-WAIT" in line)
    start = row.index("TIME-WAIT")
    assert start <= right_x < start + len("TIME-WAIT")


def test_colour_only_when_asked_and_same_text_underneath():
    ladder = demo_ladder()
    plain = render_text(ladder)
    coloured = render_text(ladder, color=True)
    assert "\x1b[" in coloured
    assert ANSI.sub("", coloured) == plain


def test_lost_segment_drawn_with_an_x():
    a, b = ("10.0.0.1", 1), ("10.0.0.2", 2)
    ladder = ladder_from_segments([
        WireSegment(0.0, a, b, seg(a, b, 5, 0, SYN)),
        WireSegment(0.1, b, a, seg(b, a, 9, 6, SYN | ACK), dropped=True),
        WireSegment(1.1, b, a, seg(b, a, 9, 6, SYN | ACK)),
    ])
    text = render_text(ladder)
    lost = next(line for line in text.splitlines() if "X" in line and "SYN-ACK" in line)
    assert "<" not in lost
    assert "(lost)" in text and "X = segment lost on the way" in text
    assert "(retransmission)" in text


def test_absolute_numbers():
    text = render_text(demo_ladder(), absolute=True)
    assert "SYN seq=100 " in text and "SYN-ACK seq=900 ack=101" in text


def test_svg_is_well_formed_standalone_and_complete():
    svg = render_svg(demo_ladder())
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for word in ("SYN seq=0", "~SYN-SENT", "TIME-WAIT", "2MSL expired", "kernel", "tcpstack"):
        assert word in texts
    lines = list(root.iter("{http://www.w3.org/2000/svg}line"))
    arrows = [ln for ln in lines if ln.get("marker-end")]
    assert len(arrows) == 9
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")   # nothing external


def test_svg_lost_segment_has_a_cross_and_no_arrowhead():
    a, b = ("10.0.0.1", 1), ("10.0.0.2", 2)
    ladder = ladder_from_segments([WireSegment(0.0, a, b, seg(a, b, 5, 0, SYN), dropped=True)])
    root = ET.fromstring(render_svg(ladder))
    lines = list(root.iter("{http://www.w3.org/2000/svg}line"))
    assert not any(ln.get("marker-end") for ln in lines)
    assert any(ln.get("stroke-dasharray") for ln in lines)


def test_html_is_self_contained_with_explanation_svg_and_table():
    html = render_html(demo_ladder())
    assert html.startswith("<!DOCTYPE html>")
    assert "A passive open and an echo." in html
    assert "<svg" in html and "<table>" in html
    assert html.count("<tr") == 1 + 9
    assert "<script" not in html and "<link" not in html
    assert "10.7.0.2:7 ~TIME-WAIT" not in html and "10.7.0.2:7 TIME-WAIT" in html
    assert "10.7.0.1:40000 ~CLOSE-WAIT" in html


def test_every_core_timer_has_a_label():
    from tcpstack.core import events
    from tcpstack.ladder.labels import TIMER_TEXT

    timers = {value for name, value in vars(events).items() if name.startswith("TIMER_")}
    assert timers == set(TIMER_TEXT)
