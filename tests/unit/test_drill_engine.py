"""The drill's engine and CLI on the core target: failures, skips, output, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tcpstack.cli import main
from tcpstack.drill.core_target import CoreTarget
from tcpstack.drill.report import Status
from tcpstack.drill.runner import run_script

PASSIVE = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 65535 <mss 1460>
   +0 > S. 0:0(0) ack 1 <mss 1460>
 +.1 < . 1:1(0) ack 1 win 65535
   +0 accept(3, ..., ...) = 4
"""


def run(tmp_path: Path, text: str, **kw: object):  # type: ignore[no-untyped-def]
    path = tmp_path / "t.pkt"
    path.write_text(text)
    return run_script(str(path), CoreTarget(), log=lambda _: None, **kw)  # type: ignore[arg-type]


def test_a_wrong_outbound_packet_fails_with_both_packets(tmp_path: Path) -> None:
    result = run(tmp_path, PASSIVE + "   +0 write(4, ..., 10) = 10\n   +0 > P. 1:11(10) ack 2\n")
    assert result.status is Status.FAIL
    assert result.line == 9
    assert "tcp_ack_seq" in result.message
    text = "\n".join(result.lines())
    assert "script packet:" in text and "actual packet:" in text
    assert "> P. 1:11(10) ack 1" in text


def test_lenient_ignores_windows_and_options_but_reports_them(tmp_path: Path) -> None:
    script = PASSIVE.replace("> S. 0:0(0) ack 1 <mss 1460>",
                             "> S. 0:0(0) ack 1 win 1 <mss 536>")
    assert run(tmp_path, script).status is Status.FAIL
    lenient = run(tmp_path, script, strict=False)
    assert lenient.status is Status.PASS
    assert any("tcp_window" in d for d in lenient.differences)


def test_timing_is_judged(tmp_path: Path) -> None:
    result = run(tmp_path, PASSIVE + "   +0 write(4, ..., 10) = 10\n   +1 > P. 1:11(10) ack 1\n")
    assert result.status is Status.FAIL
    assert "timing error" in result.message


def test_missing_packet_fails(tmp_path: Path) -> None:
    result = run(tmp_path, PASSIVE + "   +0 > P. 1:11(10) ack 1\n")
    assert result.status is Status.FAIL
    assert "not sent" in result.message


def test_unsupported_things_skip_with_their_line(tmp_path: Path) -> None:
    result = run(tmp_path, PASSIVE + "   +0 poll([{fd=4, events=POLLIN}], 1, 0) = 0\n")
    assert (result.status, result.line) == (Status.SKIP, 8)
    assert "poll" in result.message
    result = run(tmp_path, PASSIVE + "   +0 `rm -rf /tmp/nothing`\n")
    assert (result.status, result.line) == (Status.SKIP, 8)
    result = run(tmp_path, "0 > sctp: INIT[flgs=0]\n")
    assert result.status is Status.SKIP and "sctp" in result.message


def test_errno_results(tmp_path: Path) -> None:
    script = PASSIVE + """\
   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 read(4, ..., 10) = -1 EAGAIN (Resource temporarily unavailable)
   +0 < R. 1:1(0) ack 1 win 0
   +0 read(4, ..., 10) = -1 ECONNRESET (Connection reset by peer)
"""
    assert run(tmp_path, script).status is Status.PASS
    wrong = script.replace("ECONNRESET (Connection reset by peer)", "ETIMEDOUT (x)")
    result = run(tmp_path, wrong)
    assert result.status is Status.FAIL and "errno" in result.message


def test_python_code_sees_tcp_info(tmp_path: Path) -> None:
    ok = PASSIVE + "   +0 %{ assert tcpi_state == TCP_ESTABLISHED and tcpi_snd_mss == 1460 }%\n"
    assert run(tmp_path, ok).status is Status.PASS
    bad = PASSIVE + "   +0 %{ assert tcpi_state == TCP_CLOSE }%\n"
    assert run(tmp_path, bad).status is Status.FAIL
    py2 = PASSIVE + "   +0 %{ print tcpi_rto }%\n"
    assert run(tmp_path, py2).status is Status.SKIP


def test_per_target_annotations(tmp_path: Path) -> None:
    script = PASSIVE + ("   +0 > . 1:1(0) ack 999   // drill:kernel\n"
                        "// drill:core +0 close(4) = 0\n")
    assert run(tmp_path, script).status is Status.PASS
    skip = run(tmp_path, "// drill:core skip: not for the core\n" + PASSIVE)
    assert skip.status is Status.SKIP and skip.message == "not for the core"


def test_cli_summary_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.pkt"
    good.write_text(PASSIVE)
    bad = tmp_path / "sub" / "bad.pkt"
    bad.parent.mkdir()
    bad.write_text(PASSIVE + "   +0 > . 1:1(0) ack 5\n")
    assert main(["drill", str(good)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    assert main(["drill", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "1 passed, 1 failed, 0 skipped"
    assert f"FAIL {bad}" in out


def test_cli_bad_path_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tcpstack", "drill", str(tmp_path / "nope.pkt")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope.pkt" in proc.stderr
    assert "Traceback" not in proc.stderr
