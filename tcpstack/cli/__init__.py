"""The ``tcpstack`` command. Each subcommand lives in its own module with a
``register(subparsers)`` function that adds its parser and sets ``func``."""

from __future__ import annotations

import argparse
import importlib
import sys

from tcpstack import __version__
from tcpstack.errors import UserError, one_line_errors

# Modules that provide subcommands, in the order --help lists them.
SUBCOMMAND_MODULES = (
    "tcpstack.cli.demo",
    "tcpstack.cli.netcat",
    "tcpstack.cli.lab",
    "tcpstack.cli.ladder",
    "tcpstack.cli.bench",
    "tcpstack.cli.drill",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcpstack",
        description="A userspace TCP/IPv4 stack over a Linux TUN device, "
        "and a window into what TCP does on the wire.",
    )
    parser.add_argument("--version", action="version", version=f"tcpstack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that subcommand is not part of this build
                continue
            raise
        module.register(sub)
    # Every argument error, in any subcommand, is one line and exit status 2.
    for p in (parser, *sub.choices.values()):
        one_line_errors(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"tcpstack: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tcpstack: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
