"""Argument errors in every subcommand: one line on stderr, exit status 2."""

from __future__ import annotations

import pytest

from tcpstack.cli import build_parser, main

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


BAD = [["nosuch"], *([name, "--no-such-option"] for name in SUBCOMMANDS)]


@pytest.mark.parametrize("argv", BAD)
def test_a_bad_argument_is_one_line_and_exit_2(argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tcpstack") and "--help" in lines[0]
    assert captured.out == ""


def test_every_subcommand_is_covered() -> None:
    assert {"demo", "listen", "connect", "lab", "ladder", "bench"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("value", ["1", "0", "four", "-2", "5"])
def test_min_ssthresh_outside_2_to_4_is_one_line(value: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["connect", "10.7.0.1", "80", "--min-ssthresh", value])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--min-ssthresh" in lines[0] and value in lines[0]


def test_min_ssthresh_reaches_the_connection_options() -> None:
    from tcpstack.cli.common import connection_options
    args = build_parser().parse_args(["listen", "80", "--min-ssthresh", "2"])
    assert connection_options(args)["min_ssthresh"] == 2
    args = build_parser().parse_args(["listen", "80"])
    assert connection_options(args)["min_ssthresh"] is None
