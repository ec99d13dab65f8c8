"""Showing a ladder: on the terminal (colour when it is one) and into SVG/HTML files."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TextIO

from tcpstack.errors import UserError
from tcpstack.ladder.html import render_html
from tcpstack.ladder.model import Ladder
from tcpstack.ladder.svg import render_svg
from tcpstack.ladder.text import render_text


def use_color(stream: TextIO, no_color: bool = False) -> bool:
    """Colour only on a terminal, and never with --no-color or NO_COLOR set."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width(stream: TextIO) -> int:
    isatty = getattr(stream, "isatty", None)
    if isatty and isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return int(os.environ.get("COLUMNS", "80")) if os.environ.get("COLUMNS", "").isdigit() else 80


def write_file(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None


def show(ladder: Ladder, *, absolute: bool = False, no_color: bool = False,
         svg: str | None = None, html: str | None = None, header: bool = False,
         stream: TextIO | None = None) -> None:
    """Print the ladder and write the requested files."""
    out = stream or sys.stdout
    text = render_text(ladder, width=terminal_width(out), color=use_color(out, no_color),
                       absolute=absolute, header=header)
    print(text, file=out)
    if svg:
        write_file(svg, render_svg(ladder, absolute=absolute))
        print(f"wrote {svg}", file=sys.stderr)
    if html:
        write_file(html, render_html(ladder, absolute=absolute))
        print(f"wrote {html}", file=sys.stderr)
