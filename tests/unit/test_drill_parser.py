"""The packetdrill parser, on lines from real scripts: Linux's
tools/testing/selftests/net/packetdrill, FreeBSD's tcp-testsuite (Tuexen),
gVisor's test/packetdrill, and google/packetdrill's own grammar corners."""

from __future__ import annotations

import pytest

from tcpstack.drill.annotate import annotate
from tcpstack.drill.lexer import tokenize
from tcpstack.drill.model import (
    Binary,
    Code,
    Command,
    DrillSyntaxError,
    Ellipsis_,
    Int,
    ListExpr,
    PacketSpec,
    Struct,
    SyscallSpec,
    TimeKind,
    Unparsed,
    Word,
)
from tcpstack.drill.parser import parse_script


def one(line: str):  # type: ignore[no-untyped-def]
    """The action of the single event in ``line`` (after a first event at 0)."""
    script = parse_script("0 `true`\n" + line + "\n")
    assert len(script.events) == 2, script.events
    return script.events[1]


# -- Linux selftests (tools/testing/selftests/net/packetdrill) ------------------------

LINUX_BLOCKING_READ = """\
// SPDX-License-Identifier: GPL-2.0
// Test for blocking read.
--tolerance_usecs=10000

`./defaults.sh`

// Establish a connection.
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0

  +.1 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,wscale 8>
  +.1 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4

   +0...0.100 read(4, ..., 2000) = 2000
  +.1 < P. 1:2001(2000) ack 1 win 257
   +0 > . 1:1(0) ack 2001
"""


def test_linux_selftest_script() -> None:
    s = parse_script(LINUX_BLOCKING_READ, "blocking-read.pkt")
    assert s.option("tolerance_usecs") == "10000"
    assert s.init_command == Command("./defaults.sh")
    assert [e.line for e in s.events] == [8, 9, 10, 11, 13, 14, 15, 16, 18, 19, 20]
    syn = s.events[4].action
    assert isinstance(syn, PacketSpec)
    assert (syn.direction, syn.flags, syn.seq, syn.payload_len, syn.window) == \
        ("<", "S", 0, 0, 32792)
    assert [str(o) for o in syn.options or ()] == ["mss 1000", "nop", "wscale 7"]
    read = s.events[8]
    assert read.time.kind is TimeKind.RELATIVE and read.time.usecs == 0
    assert isinstance(read.action, SyscallSpec)
    assert read.action.blocking and read.action.end_usecs == 100_000
    assert read.action.args == (Int(4), Ellipsis_(), Int(2000))
    assert s.events[9].time.usecs == 100_000            # "+.1"


def test_linux_client_syn_options_and_errno() -> None:
    ev = one("   +0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8>")
    assert [str(o) for o in ev.action.options] == ["mss 1460", "sackOK", "TS val 0 ecr 0",
                                                   "nop", "wscale 8"]
    assert ev.action.window is None and ev.action.ack is None
    ev = one("+0 connect(4, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    assert ev.action.result == Int(-1)
    assert (ev.action.errno, ev.action.note) == ("EINPROGRESS", "Operation now in progress")


def test_linux_sack_blocks_and_data() -> None:
    ev = one("+0 < . 1:1(0) ack 1 win 257 <sack 1001:2001 3001:4001,nop,nop>")
    assert ev.action.options[0].values == (1001, 2001, 3001, 4001)
    ev = one("  +.1 < P. 2001:4001(2000) ack 1 win 257")
    assert (ev.action.flags, ev.action.seq, ev.action.end_seq) == ("P.", 2001, 4001)


def test_linux_code_block() -> None:
    ev = one("+0 %{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%")
    assert ev.action == Code("assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd")
    ev = one("+0 %{\nassert tcpi_ca_state == TCP_CA_Recovery\nassert tcpi_rto > 0\n}%")
    assert "TCP_CA_Recovery" in ev.action.text


# -- FreeBSD tcp-testsuite (Michael Tuexen) ---------------------------------------------

FREEBSD = """\
--ip_version=ipv4
--tolerance_usecs=75000

// Ensure that all relevant sysctl variables have their default values.
 0.00 `sysctl -w net.inet.tcp.rfc1323=1`
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)
+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0
+0.00 getsockopt(3, SOL_SOCKET, SO_RCVBUF, [65536], [4]) = 0
+0.00 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0.00 > S  0:0(0)       win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 100 ecr 0>
+0.10 < S. 0:0(0) ack 1 win 32767 <mss 1460,sackOK,eol,eol>
+0.00 >  . 1:1(0) ack 1 win 65535
+0.10 `sockstat -4 -P tcp -s | grep packetdril | grep -c TIME_WAIT | grep 1`
+0.00 close(3) = 0
"""


def test_freebsd_script() -> None:
    s = parse_script(FREEBSD)
    assert s.option("ip_version") == "ipv4" and s.option("tolerance_usecs") == "75000"
    actions = [e.action for e in s.events]
    assert actions[0] == Command("sysctl -w net.inet.tcp.rfc1323=1")
    assert actions[2].result == Int(2, hex=True) and actions[2].note == "flags O_RDWR"
    assert actions[3].args[2] == Binary("|", Word("O_RDWR"), Word("O_NONBLOCK"))
    assert actions[4].args[3] == ListExpr((Int(65536),))
    synack = actions[7]
    assert [o.kind for o in synack.options] == ["mss", "sackOK", "eol", "eol"]
    assert isinstance(actions[9], Command)


def test_freebsd_sctp_line_parses_as_unsupported() -> None:
    ev = one("+0.0 > sctp: INIT[flgs=0, tag=1, a_rwnd=1864135, os=1, is=1, tsn=1]")
    assert isinstance(ev.action, Unparsed) and "sctp" in ev.action.reason


# -- gVisor test/packetdrill --------------------------------------------------------------

def test_gvisor_lines() -> None:
    ev = one("+0 > S. 0:0(0) ack 1 <...>")
    assert ev.action.options is None
    ev = one("+0.300 read(4,..., 4) = -1 ECONNRESET (Connection Reset by Peer)")
    assert ev.action.args == (Int(4), Ellipsis_(), Int(4))
    assert ev.action.note == "Connection Reset by Peer"
    ev = one("+0 > R  2:2(0) win 0")
    assert (ev.action.flags, ev.action.window) == ("R", 0)
    ev = one("+0.100 setsockopt(4, SOL_TCP, TCP_LINGER2, [1], 4) = 0")
    assert ev.action.args[2] == Word("TCP_LINGER2")


# -- grammar corners (google/packetdrill parser.y) ------------------------------------------

def test_times() -> None:
    assert one("* > . 1:1(0) ack 1").time.kind is TimeKind.ANY
    t = one("0.1~0.2 > . 1:1(0) ack 1").time
    assert (t.kind, t.usecs, t.end_usecs) == (TimeKind.ABSOLUTE_RANGE, 100_000, 200_000)
    t = one("+.1~+.25 > . 1:1(0) ack 1").time
    assert (t.kind, t.usecs, t.end_usecs) == (TimeKind.RELATIVE_RANGE, 100_000, 250_000)
    assert one("2 close(3) = 0").time.usecs == 2_000_000
    ev = one("+.1...0.200 write(4, ..., 10) = 10")
    assert ev.time.usecs == 100_000 and ev.action.end_usecs == 200_000


def test_structs_and_strings() -> None:
    ev = one("+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0")
    linger = ev.action.args[3]
    assert isinstance(linger, Struct) and linger.field("onoff") == Int(1)
    ev = one('+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "reno", 4) = 0')
    assert str(ev.action.args[3]) == '"reno"'
    ev = one("+0 getsockname(3, {sa_family=AF_INET, sin_port=htons(8080), "
             "sin_addr=inet_addr(\"192.168.0.1\")}, [16]) = 0")
    assert isinstance(ev.action.args[1], Struct)


def test_comments_and_ports_and_flags() -> None:
    s = parse_script("/* block\ncomment */ 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 "
                     "// trailing\n+0 < 1234>8080 S 0:0(0) win 100\n+0 > - 1:1(0) win 0\n")
    assert s.events[0].line == 2
    syn = s.events[1].action
    assert (syn.src_port, syn.dst_port, syn.flags) == (1234, 8080, "S")
    assert s.events[2].action.flags == ""
    assert one("+0 > F. 1:1(0) ack 1").action.flags == "F."
    assert one("+0 > R. 1:1(0) ack 1").action.flags == "R."
    assert one("+0 > SEW 0:0(0)").action.flags == "SEW"


def test_semantic_errors() -> None:
    bad = one("+0 < . 1:1(0) ack 1")                     # no win on an inbound packet
    assert isinstance(bad.action, Unparsed) and "window" in bad.action.reason
    bad = one("+0 > . 1:5(3) ack 1")
    assert "inconsistent" in bad.action.reason
    bad = one("+0 < S 0:0(0) win 1 <mss 1460,nop>")         # 5 bytes of options
    assert "padded" in bad.action.reason
    bad = one("* < . 1:1(0) ack 1 win 1")
    assert "outbound" in bad.action.reason
    with pytest.raises(DrillSyntaxError):
        parse_script("0.5 close(3) = 0\n")                 # first event not at 0
    with pytest.raises(DrillSyntaxError):
        tokenize("0 %{ never closed")


def test_recovery_keeps_following_events() -> None:
    s = parse_script("0 `true`\n+0 > udp (1472)\n+0 close(3) = 0\n")
    assert isinstance(s.events[1].action, Unparsed)
    assert isinstance(s.events[2].action, SyscallSpec)


def test_lexer_longest_match() -> None:
    kinds = [(t.kind, t.text) for t in tokenize("192.168.0.1 1:1001(1000) 0x1f +.5...0.2 S.")]
    assert kinds[0] == ("IPV4_ADDR", "192.168.0.1")
    assert ("INTEGER", "1001") in kinds and ("HEX", "0x1f") in kinds
    assert ("FLOAT", ".5") in kinds and ("ELLIPSIS", "...") in kinds
    assert kinds[-3:] == [("WORD", "S"), ("CHAR", "."), ("EOF", "")]


def test_annotations() -> None:
    text = "0 `true`\n+0 close(3) = 0   // drill:kernel\n// drill:core +0 close(4) = 0\n"
    core = annotate(text, "core")
    assert core.text.split("\n")[1:3] == ["", "+0 close(4) = 0"]
    kernel = annotate(text, "kernel")
    assert kernel.text.split("\n")[1:3] == ["+0 close(3) = 0", ""]
    assert annotate("// drill:!core skip: later\n", "kernel").skip == "later"
    assert annotate("// drill:!core skip: later\n", "core").skip is None
    with pytest.raises(DrillSyntaxError):
        annotate("// drill:bsd +0 close(3) = 0\n", "core")
