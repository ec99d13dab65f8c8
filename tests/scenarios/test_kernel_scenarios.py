"""The scenarios against the Linux kernel: tcpstack over a TUN in a private namespace,
a kernel socket on the other side. tcpstack's states are exact, the kernel's inferred."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tcpstack.cli import main
from tcpstack.core.events import TIMER_KEEPALIVE, TIMER_TIME_WAIT
from tcpstack.core.state import State
from tcpstack.ladder.capture import read_capture
from tcpstack.ladder.labels import flag_word
from tcpstack.ladder.model import Ladder, StateItem
from tcpstack.link import netns as ns
from tcpstack.scenarios import SCENARIOS
from tcpstack.scenarios.run import run_kernel

pytestmark = pytest.mark.root
S = State


@pytest.fixture
def netns_name():
    name = f"tcps-scn-{uuid.uuid4().hex[:8]}"
    yield name
    if ns.netns_exists(name):            # the run removes it; make sure even on failure
        ns.remove_netns(name)


def run(name: str, netns: str, **kw) -> Ladder:
    ladder = run_kernel(SCENARIOS[name], netns=netns, **kw)
    assert not ns.netns_exists(netns)    # the namespace it created is gone
    return ladder


def segs(ladder: Ladder, side: int | None = None) -> list[str]:
    return [flag_word(it.segment.flags) for it in ladder.segments
            if side is None or it.src == side]


def side_of(ladder: Ladder, role: str) -> int:
    return next(i for i, life in enumerate(ladder.lifelines) if life.role == role)


def inferred(ladder: Ladder, side: int) -> bool:
    return all(it.inferred for it in ladder.items
               if isinstance(it, StateItem) and it.endpoint == side)


def test_demo(netns_name, tmp_path):
    ladder = run("demo", netns_name, pcap=str(tmp_path / "d.pcap"))
    k, u = side_of(ladder, "kernel"), side_of(ladder, "tcpstack")
    assert k == 0                                     # the client is drawn on the left
    assert segs(ladder)[:3] == ["SYN", "SYN-ACK", "ACK"]
    assert ladder.states(u)[:4] == [S.LISTEN, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT]
    assert ladder.states(u)[-2:] == [S.LAST_ACK, S.CLOSED]
    assert ladder.states(k)[:3] == [S.CLOSED, S.SYN_SENT, S.ESTABLISHED]
    assert S.TIME_WAIT in ladder.states(k) and inferred(ladder, k)
    payloads = [it.segment.payload for it in ladder.segments if it.segment.payload]
    assert payloads == [b"hello, tcpstack\n", b"hello, kernel\n"]
    # The same segments, read back from the pcap the run wrote.
    (conn,) = read_capture(str(tmp_path / "d.pcap")).connections
    assert [flag_word(w.segment.flags) for w in conn.segments] == segs(ladder)


def test_demo_with_faults_draws_lost_segments(netns_name):
    # seed=2 loses the kernel's first SYN (the first packet tcpstack's link
    # receives): the kernel retransmits it after its 1 s SYN timeout.
    ladder = run("demo", netns_name, fault="loss=25%,seed=2")
    k, u = side_of(ladder, "kernel"), side_of(ladder, "tcpstack")
    first = ladder.segments[0]
    assert (first.src, flag_word(first.segment.flags), first.dropped) == (k, "SYN", True)
    lost = [it for it in ladder.segments if it.dropped]
    for it in lost:       # every lost segment is sent again by the same end
        again = [later for later in ladder.segments if later.time > it.time
                 and later.src == it.src and later.segment.seq == it.segment.seq
                 and later.segment.flags == it.segment.flags and not later.dropped]
        assert again, f"lost segment never repeated: {it.segment}"
    assert ladder.states(u)[:2] == [S.LISTEN, S.SYN_RECEIVED]
    assert ladder.states(u)[-1] is S.CLOSED
    payloads = [it.segment.payload for it in ladder.segments
                if it.segment.payload and not it.dropped]
    assert b"hello, tcpstack\n" in payloads and b"hello, kernel\n" in payloads


def test_demo_fault_is_for_kernel_runs_only(capsys):
    assert main(["demo", "simultaneous-open", "--sim", "--fault", "loss=5%"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fault" in err[0]


def test_handshake(netns_name):
    ladder = run("handshake", netns_name)
    assert segs(ladder) == ["SYN", "SYN-ACK", "ACK"]
    assert ladder.states(0) == [S.CLOSED, S.SYN_SENT, S.ESTABLISHED] and inferred(ladder, 0)
    assert ladder.states(1) == [S.LISTEN, S.SYN_RECEIVED, S.ESTABLISHED]


def test_data(netns_name):
    ladder = run("data", netns_name)
    payloads = [(it.src, it.segment.payload) for it in ladder.segments if it.segment.payload]
    assert payloads == [(0, b"hello, tcpstack\n"), (1, b"HELLO, TCPSTACK\n")]


def test_active_close_tcpstack_waits_2msl(netns_name):
    ladder = run("active-close", netns_name)
    u = side_of(ladder, "tcpstack")
    path = ladder.states(u)
    assert path[3] is S.FIN_WAIT_1 and path[-2:] == [S.TIME_WAIT, S.CLOSED]
    assert ladder.timers(u) == [TIMER_TIME_WAIT]
    k = 1 - u
    assert S.CLOSE_WAIT in ladder.states(k) and ladder.states(k)[-1] is S.CLOSED
    assert [f for f in segs(ladder, u) if "FIN" in f] == ["FIN+ACK"]


def test_passive_close_tcpstack_in_close_wait(netns_name):
    ladder = run("passive-close", netns_name)
    u = side_of(ladder, "tcpstack")
    assert ladder.states(u)[3:] == [S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED]
    at = {it.new: it.time for it in ladder.items
          if isinstance(it, StateItem) and it.endpoint == u}
    assert at[S.LAST_ACK] - at[S.CLOSE_WAIT] >= 0.25
    assert ladder.states(1 - u)[-3:] == [S.FIN_WAIT_1, S.FIN_WAIT_2, S.TIME_WAIT]


def test_half_close(netns_name):
    ladder = run("half-close", netns_name)
    u = side_of(ladder, "tcpstack")
    cw = next(it.time for it in ladder.items if isinstance(it, StateItem)
              and it.endpoint == u and it.new is S.CLOSE_WAIT)
    replies = [it.segment.payload for it in ladder.segments
               if it.src == u and it.segment.payload and it.time >= cw]
    assert replies == [b"reply 1\n", b"reply 2\n"]
    assert ladder.states(u)[-3:] == [S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED]


def test_refused(netns_name):
    ladder = run("refused", netns_name)
    assert segs(ladder) == ["SYN", "RST+ACK"]
    assert ladder.states(0) == [S.CLOSED, S.SYN_SENT, S.CLOSED]


def test_keepalive_probes_answered_by_the_kernel(netns_name):
    ladder = run("keepalive", netns_name)
    u = side_of(ladder, "tcpstack")
    probes = [it for it in ladder.segments if it.note == "keepalive probe"]
    assert len(probes) >= 2 and all(p.src == u for p in probes)
    assert ladder.timers(u).count(TIMER_KEEPALIVE) == len(probes)
    answers = [it for it in ladder.segments if it.src != u and it.time > probes[0].time]
    assert len(answers) >= len(probes)


def test_zero_window_kernel_probes(netns_name):
    ladder = run("zero-window", netns_name)
    u = side_of(ladder, "tcpstack")
    assert any(it.src == u and it.segment.window == 0 for it in ladder.segments)
    probes = [it for it in ladder.segments if it.note == "zero-window probe"]
    assert probes and all(p.src != u for p in probes)
    got = sum(len(it.segment.payload) for it in ladder.segments
              if it.src != u and it.note != "zero-window probe")
    assert got == 12000


def test_cli_demo_plain_output_and_files(tmp_path):
    svg, html, pcap = tmp_path / "d.svg", tmp_path / "d.html", tmp_path / "d.pcap"
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "tcpstack", "demo", "--svg", str(svg), "--html", str(html),
         "--pcap", str(pcap)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out                            # not a terminal: plain
    assert max(len(line) for line in out.splitlines()) <= 80
    for word in ("(kernel)", "(tcpstack)", "SYN seq=0", "SYN-ACK seq=0 ack=1", "LISTEN",
                 "~SYN-SENT", "CLOSE-WAIT", "LAST-ACK", "~TIME-WAIT"):
        assert word in out
    assert svg.read_text().startswith("<svg") and "<table>" in html.read_text()
    assert main(["ladder", str(pcap), "--no-color"]) == 0



# A command started in the background by a non-interactive shell (as CI may
# start the suite) inherits SIGINT *ignored*, and so would the demo; this
# stands for a terminal's Ctrl-C, so the demo gets Python's default handler.
WITH_DEFAULT_SIGINT = ("import runpy, signal, sys; "
                       "signal.signal(signal.SIGINT, signal.default_int_handler); "
                       "sys.argv[0] = 'tcpstack'; "
                       "runpy.run_module('tcpstack', run_name='__main__')")


def test_ctrl_c_cleans_up(netns_name):
    proc = subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, "demo", "keepalive", "--netns", netns_name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not ns.netns_exists(netns_name) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.strip() == "tcpstack: interrupted"
    assert not ns.netns_exists(netns_name)
