"""Per-target lines: how one script states where tcpstack and Linux must differ.

The annotations live in comments, so packetdrill itself (and the ``kernel``
target, which runs Linux the way packetdrill does) reads the script unchanged:

``// drill:core +0 > . 1:1(0) ack 1001``
    A line of its own whose comment holds an event for the listed targets only
    (here the core). Other targets see a comment.

``+0 > . 1:1(0) ack 1001   // drill:kernel``
    A trailing annotation: this event runs only on the listed targets (here the
    kernel); other targets drop the line.

``// drill:core skip: why``
    The whole script is SKIPped on the listed targets, with that reason.

Targets are ``core`` and ``kernel``; a list is comma-separated (``core,kernel``)
and ``!core`` means every target but the core. Line numbers never move: a
dropped line becomes empty and an enabled one keeps its place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tcpstack.drill.model import DrillSyntaxError

TARGETS = ("core", "kernel")

_OWN_LINE = re.compile(r"^(?P<indent>\s*)//\s*drill:(?P<targets>[!a-z,]+)(?:\s+(?P<rest>.*))?$")
_TRAILING = re.compile(r"^(?P<code>.*?\S.*?)\s*//\s*drill:(?P<targets>[!a-z,]+)\s*$")


@dataclass(frozen=True, slots=True)
class Annotated:
    text: str                    # the script as the target sees it
    skip: str | None             # "skip:" reason for this target
    skip_line: int
    lines: tuple[int, ...]       # lines enabled or dropped by an annotation


def _applies(spec: str, target: str, line: int) -> bool:
    names = [n for n in spec.split(",") if n]
    if not names:
        raise DrillSyntaxError(line, "drill: annotation names no target")
    for name in names:
        if name.lstrip("!") not in TARGETS:
            raise DrillSyntaxError(line, f"drill: unknown target {name.lstrip('!')!r} "
                                         f"(targets: {', '.join(TARGETS)})")
    positive = [n for n in names if not n.startswith("!")]
    negative = [n[1:] for n in names if n.startswith("!")]
    if target in negative:
        return False
    return target in positive if positive else True


def annotate(text: str, target: str) -> Annotated:
    """``text`` as ``target`` sees it (see the module docstring)."""
    out: list[str] = []
    skip: str | None = None
    skip_line = 0
    touched: list[int] = []
    for number, line in enumerate(text.split("\n"), 1):
        m = _OWN_LINE.match(line)
        if m:
            rest = (m.group("rest") or "").strip()
            applies = _applies(m.group("targets"), target, number)
            if rest.startswith("skip"):
                if applies and skip is None:
                    skip = rest[4:].lstrip(":").strip() or "skipped for this target"
                    skip_line = number
                out.append("")
                continue
            if not rest:
                raise DrillSyntaxError(number, "drill: annotation without an event")
            out.append(m.group("indent") + rest if applies else "")
            touched.append(number)
            continue
        m = _TRAILING.match(line)
        if m and "//" not in m.group("code"):
            touched.append(number)
            out.append(m.group("code") if _applies(m.group("targets"), target, number) else "")
            continue
        out.append(line)
    return Annotated("\n".join(out), skip, skip_line, tuple(touched))
