"""``tcpstack bench``: throughput, latency, connection rate, idle memory and loss,
tcpstack against kernel-to-kernel over a veth pair, in namespaces it creates."""

from __future__ import annotations

from typing import Any

from tcpstack.errors import one_line_errors


def register(subparsers: Any) -> None:
    from tcpstack.bench import main as bench_main

    parser = subparsers.add_parser(
        "bench", help="benchmark tcpstack against the kernel (Markdown table, JSON)",
        description=bench_main.__doc__)
    one_line_errors(parser)
    bench_main.add_arguments(parser)
    parser.set_defaults(func=bench_main.run)
