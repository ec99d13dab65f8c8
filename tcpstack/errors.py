"""Errors a person can cause. The CLI prints them as one line and exits non-zero.

``one_line_errors`` gives an ``argparse`` parser the same manners, for
argument errors; both the ``tcpstack`` command (``tcpstack.cli``) and
``tools/bench`` (``tcpstack.bench``) use it, so it lives here and not in
either of them.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:              # argparse itself is not imported for the error classes
    import argparse


class UserError(Exception):
    """A problem the user can fix (bad address, not root, port in use...).

    ``exit_code`` is 2 for usage errors and 1 for runtime failures.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(UserError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make argument errors one line on stderr and exit 2 (instead of usage + error)."""

    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    parser.error = types.MethodType(error, parser)  # type: ignore[method-assign]
