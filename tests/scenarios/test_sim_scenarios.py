"""Every scenario on the simulator: the segments it draws and the states on both lifelines.

Lifeline 0 is the client (or peer A), lifeline 1 the server (or peer B).
Segments read "A SYN" (sent by lifeline 0), "B SYN-ACK lost" (lost on the way).
"""

from __future__ import annotations

import itertools

import pytest

from tcpstack.cli import main
from tcpstack.core.events import TIMER_KEEPALIVE, TIMER_PERSIST, TIMER_RETRANSMIT, TIMER_TIME_WAIT
from tcpstack.core.state import State
from tcpstack.ladder.labels import flag_word
from tcpstack.ladder.model import Ladder, NoteItem, StateItem
from tcpstack.ladder.svg import render_svg
from tcpstack.ladder.text import render_text
from tcpstack.scenarios import SCENARIOS
from tcpstack.scenarios.run import run_simulated
from tcpstack.scenarios.simulated import MSL, SIMULATED

S = State
OPEN = ["A SYN", "B SYN-ACK", "A ACK"]
CLIENT_OPEN = [S.CLOSED, S.SYN_SENT, S.ESTABLISHED]
SERVER_OPEN = [S.LISTEN, S.SYN_RECEIVED, S.ESTABLISHED]


def run(name: str) -> Ladder:
    return run_simulated(SCENARIOS[name])


def segments(ladder: Ladder) -> list[str]:
    return ["AB"[it.src] + " " + flag_word(it.segment.flags) + (" lost" if it.dropped else "")
            for it in ladder.segments]


def notes(ladder: Ladder) -> list[str]:
    return [it.note for it in ladder.segments]


def exact(ladder: Ladder) -> bool:
    """Both ends are tcpstack stacks: no state is inferred."""
    return not any(it.inferred for it in ladder.items if isinstance(it, StateItem))


def test_every_scenario_runs_on_the_simulator_and_renders():
    for name, scenario in SCENARIOS.items():
        if not scenario.sim:
            continue
        assert name in SIMULATED
        ladder = run(name)
        assert ladder.explanation == scenario.explanation and ladder.title
        text = render_text(ladder, header=True)
        assert scenario.explanation.split()[0] in text
        assert render_svg(ladder).startswith("<svg")


def test_handshake():
    ladder = run("handshake")
    assert segments(ladder) == OPEN
    assert ladder.states(0) == CLIENT_OPEN and ladder.states(1) == SERVER_OPEN
    syn, synack, _ = ladder.segments
    assert syn.segment.options.mss and synack.segment.ack == (syn.segment.seq + 1) % 2**32
    assert exact(ladder)


def test_data():
    ladder = run("data")
    assert segments(ladder) == [*OPEN, "A PSH+ACK", "B ACK", "B PSH+ACK", "A ACK"]
    data = ladder.segments[3].segment
    assert ladder.segments[4].segment.ack == (data.seq + len(data.payload)) % 2**32


def test_active_close():
    ladder = run("active-close")
    assert segments(ladder) == [*OPEN, "A FIN+ACK", "B ACK", "B FIN+ACK", "A ACK"]
    assert ladder.states(0)[3:] == [S.FIN_WAIT_1, S.FIN_WAIT_2, S.TIME_WAIT, S.CLOSED]
    assert ladder.states(1)[3:] == [S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED]
    assert ladder.timers(0) == [TIMER_TIME_WAIT]
    times = {it.new: it.time for it in ladder.items
             if isinstance(it, StateItem) and it.endpoint == 0}
    assert times[S.CLOSED] - times[S.TIME_WAIT] == pytest.approx(2 * MSL)


def test_passive_close():
    ladder = run("passive-close")
    assert segments(ladder) == [*OPEN, "B FIN+ACK", "A ACK", "A FIN+ACK", "B ACK"]
    assert ladder.states(0)[3:] == [S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED]
    assert ladder.states(1)[3:] == [S.FIN_WAIT_1, S.FIN_WAIT_2, S.TIME_WAIT]
    times = {it.new: it.time for it in ladder.items
             if isinstance(it, StateItem) and it.endpoint == 0}
    assert times[S.LAST_ACK] - times[S.CLOSE_WAIT] >= 0.5     # the application took its time


def test_half_close_the_close_wait_side_keeps_sending():
    ladder = run("half-close")
    names = segments(ladder)
    assert names[:5] == [*OPEN, "A PSH+ACK", "A FIN+ACK"]
    assert names[-2:] == ["B FIN+ACK", "A ACK"]
    close_wait_at = next(it.time for it in ladder.items if isinstance(it, StateItem)
                         and it.endpoint == 1 and it.new is S.CLOSE_WAIT)
    replies = [it for it in ladder.segments
               if it.src == 1 and it.segment.payload and it.time > close_wait_at]
    assert [r.segment.payload for r in replies] == [b"reply 1\n", b"reply 2\n"]
    assert ladder.states(0)[3:] == [S.FIN_WAIT_1, S.FIN_WAIT_2, S.TIME_WAIT]
    assert ladder.states(1)[3:] == [S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED]


def test_simultaneous_open():
    ladder = run("simultaneous-open")
    assert sorted(segments(ladder)[:2]) == ["A SYN", "B SYN"]
    assert sorted(segments(ladder)[2:]) == ["A SYN-ACK", "B SYN-ACK"]
    for side in (0, 1):
        assert ladder.states(side) == [S.CLOSED, S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED]
    assert "" == notes(ladder)[2] == notes(ladder)[3]       # a SYN-ACK is no retransmission
    assert [life.role for life in ladder.lifelines] == ["peer A", "peer B"]


def test_simultaneous_close():
    ladder = run("simultaneous-close")
    assert segments(ladder)[3:] == ["A FIN+ACK", "B FIN+ACK", "B ACK", "A ACK"]
    for side in (0, 1):
        assert ladder.states(side)[3:] == [S.FIN_WAIT_1, S.CLOSING, S.TIME_WAIT, S.CLOSED]
        assert ladder.timers(side) == [TIMER_TIME_WAIT]


def test_finwait1_to_timewait():
    ladder = run("finwait1-to-timewait")
    assert segments(ladder)[3:] == ["A FIN+ACK", "B ACK lost", "B FIN+ACK", "A ACK"]
    fin = ladder.segments[5].segment
    assert fin.ack == (ladder.segments[3].segment.seq + 1) % 2**32   # FIN and ACK of our FIN
    path = ladder.states(0)[3:]
    assert path[0] is S.FIN_WAIT_1 and path[-2:] == [S.TIME_WAIT, S.CLOSED]
    assert S.CLOSING not in path
    # Any FIN-WAIT-2 is only the instant between processing the ACK and the FIN.
    at = {it.new: it.time for it in ladder.items
          if isinstance(it, StateItem) and it.endpoint == 0}
    assert at.get(S.FIN_WAIT_2, at[S.TIME_WAIT]) == at[S.TIME_WAIT]


def test_time_wait_reack():
    ladder = run("time-wait-reack")
    assert segments(ladder)[3:] == ["A FIN+ACK", "B ACK", "B FIN+ACK", "A ACK lost",
                                    "B FIN+ACK", "A ACK"]
    assert notes(ladder)[7] == "retransmission"
    assert ladder.timers(1) == [TIMER_RETRANSMIT]
    restarted = [it for it in ladder.items
                 if isinstance(it, NoteItem) and it.text == "2MSL timer restarted"]
    assert len(restarted) == 1 and restarted[0].time == ladder.segments[8].time
    closed_at = max(it.time for it in ladder.items if isinstance(it, StateItem)
                    and it.endpoint == 0 and it.new is S.CLOSED)
    assert closed_at == pytest.approx(ladder.segments[8].time + 2 * MSL)


def test_old_duplicate_syn():
    ladder = run("old-duplicate-syn")
    assert segments(ladder) == ["A SYN lost", "A SYN", "B SYN-ACK", "A RST", "A SYN",
                                "B SYN-ACK", "A ACK"]
    assert notes(ladder)[1] == "old duplicate SYN"
    old, stale_synack, rst = (ladder.segments[i].segment for i in (1, 2, 3))
    assert stale_synack.ack == (old.seq + 1) % 2**32 and rst.seq == stale_synack.ack
    assert ladder.states(0) == CLIENT_OPEN
    assert ladder.states(1) == [S.LISTEN, S.SYN_RECEIVED, S.LISTEN, S.SYN_RECEIVED,
                                S.ESTABLISHED]
    assert SCENARIOS["old-duplicate-syn"].absolute


def test_refused():
    ladder = run("refused")
    assert segments(ladder) == ["A SYN", "B RST+ACK"]
    assert ladder.states(0) == [S.CLOSED, S.SYN_SENT, S.CLOSED]
    assert ladder.states(1) == [S.CLOSED]
    syn, rst = (it.segment for it in ladder.segments)
    assert rst.seq == 0 and rst.ack == (syn.seq + 1) % 2**32


def test_keepalive_probes_then_give_up():
    ladder = run("keepalive")
    assert segments(ladder) == [*OPEN, "A ACK", "B ACK", "A ACK lost", "A ACK lost",
                                "A ACK lost", "A RST lost"]
    assert notes(ladder)[3:8] == ["keepalive probe", "", *["keepalive probe"] * 3]
    assert ladder.states(0) == [*CLIENT_OPEN, S.CLOSED]
    assert ladder.states(1) == SERVER_OPEN          # the server never learns
    assert ladder.timers(0) == [TIMER_KEEPALIVE] * 5
    probe = ladder.segments[3].segment
    assert probe.seq == (ladder.segments[2].segment.seq - 1) % 2**32     # SND.NXT - 1


def test_zero_window_persist_probes():
    ladder = run("zero-window")
    zero = [it for it in ladder.segments if it.src == 1 and it.segment.window == 0]
    probes = [it for it in ladder.segments if it.note == "zero-window probe"]
    assert len(zero) >= 3 and len(probes) >= 3
    assert TIMER_PERSIST in ladder.timers(0)
    gaps = [b.time - a.time for a, b in itertools.pairwise(probes)]
    assert gaps[1] == pytest.approx(2 * gaps[0], rel=0.05)            # backoff
    sent = sum(len(it.segment.payload) for it in ladder.segments if it.src == 0
               and it.note != "zero-window probe")
    assert sent == 3000
    assert ladder.states(0) == CLIENT_OPEN and ladder.states(1) == SERVER_OPEN


def test_lost_segment_rto_backoff():
    ladder = run("lost-segment")
    assert segments(ladder) == [*OPEN, "A PSH+ACK lost", "A PSH+ACK lost", "A PSH+ACK lost",
                                "A PSH+ACK", "B ACK"]
    assert notes(ladder)[4:7] == ["retransmission"] * 3
    sends = ladder.segments[3:7]
    gaps = [b.time - a.time for a, b in itertools.pairwise(sends)]
    assert gaps[1] == pytest.approx(2 * gaps[0]) and gaps[2] == pytest.approx(2 * gaps[1])
    assert ladder.timers(0) == [TIMER_RETRANSMIT] * 3


def test_pmtu_black_hole_found_and_worked_around():
    ladder = run("pmtu")
    data = [it for it in ladder.segments if it.src == 0 and it.segment.payload]
    lost = [it for it in data if it.dropped]
    assert lost and all(len(it.segment.payload) > 1148 for it in lost)
    assert all(len(it.segment.payload) <= 1024 for it in data if not it.dropped)
    assert ladder.timers(0)[-3:] == [TIMER_RETRANSMIT] * 3
    notes = [it.text for it in ladder.items if isinstance(it, NoteItem) and it.endpoint == 0]
    assert notes == ["MSS 1448 -> 1024, path MTU 1500 -> 1076: black hole suspected"]
    delivered = sum(len(it.segment.payload) for it in data if not it.dropped)
    assert delivered >= 6000 and ladder.states(1)[-1] is S.CLOSED


def test_demo_list_and_sim_cli(capsys, tmp_path):
    assert main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SCENARIOS)
    pcap, svg = tmp_path / "s.pcap", tmp_path / "s.svg"
    assert main(["demo", "simultaneous-close", "--pcap", str(pcap), "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(SCENARIOS["simultaneous-close"].title) and "CLOSING" in out
    assert main(["ladder", str(pcap)]) == 0          # the pcap draws the same exchange
    assert "~CLOSING" in capsys.readouterr().out
    assert main(["demo", "no-such-scenario"]) == 2
    assert main(["demo", "demo", "--sim"]) == 2
