"""``tcpstack ladder FILE.pcap``: the ladder diagram of a connection in any capture."""

from __future__ import annotations

import argparse
import sys

from tcpstack.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "ladder", help="draw the ladder diagram of a TCP connection from a pcap file",
        description="Draw a TCP connection from a capture (tcpdump, Wireshark or tcpstack "
        "--pcap; classic pcap, raw IPv4 or Ethernet) as a ladder diagram: one arrow per "
        "segment, the states of both ends inferred from the segments (marked ~).")
    p.add_argument("file", metavar="FILE.pcap", help="capture file (classic pcap)")
    p.add_argument("--conn", metavar="N|ADDR:PORT-ADDR:PORT",
                   help="which connection to draw when the capture holds several")
    p.add_argument("--absolute", action="store_true",
                   help="raw sequence numbers instead of relative ones")
    p.add_argument("--svg", metavar="FILE", help="also write a standalone SVG")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--no-color", action="store_true", help="never colour the output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tcpstack.ladder.build import ladder_from_segments
    from tcpstack.ladder.capture import read_capture, select_connection
    from tcpstack.ladder.output import show

    capture = read_capture(args.file)
    try:
        conn = select_connection(capture, args.conn)
    except UsageError:
        if args.conn is None and len(capture.connections) > 1:
            print(f"{args.file}: {len(capture.connections)} TCP connections:")
            for n, c in enumerate(capture.connections, 1):
                print(f"  {n:3}  {c.summary()}")
        raise
    ladder = ladder_from_segments(conn.segments, title=f"{conn.name} in {args.file}",
                                  notes=conn.notes)
    show(ladder, absolute=args.absolute, no_color=args.no_color, svg=args.svg, html=args.html)
    if capture.skipped:
        print(f"({capture.skipped} of {capture.frames} frames were not IPv4/TCP and were "
              f"skipped)", file=sys.stderr)
    return 0
