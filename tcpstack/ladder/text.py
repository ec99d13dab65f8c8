"""The ladder diagram as terminal text, optionally coloured, fitted to a width.

```
  time      10.7.0.1:40000                           10.7.0.2:7
             (kernel)                                (tcpstack)
                |                                        LISTEN
  0.0000        |---------SYN seq=0 win=64240----------->|
                |   mss=1460 sack-ok ts=1/0 wscale=7     |
  0.0001   ~SYN-SENT                               SYN-RECEIVED
```

State changes are written on the lifeline where they happen; ``~`` marks a
state inferred from the segments rather than traced.
"""

from __future__ import annotations

import textwrap

from tcpstack.ladder.labels import arrow_kind
from tcpstack.ladder.layout import Row, build_rows, format_time, state_text, time_decimals
from tcpstack.ladder.model import Ladder, NoteItem, SegmentItem

MIN_WIDTH = 60
MAX_WIDTH = 120

RESET = "\x1b[0m"
STYLE = {
    "time": "\x1b[2m",
    "line": "\x1b[2m",
    "head": "\x1b[1m",
    "state": "\x1b[1;36m",
    "inferred": "\x1b[33m",
    "timer": "\x1b[1;33m",
    "note": "\x1b[2;3m",
    "extra": "\x1b[2m",
    "syn": "\x1b[32m",
    "fin": "\x1b[35m",
    "rst": "\x1b[1;31m",
    "data": "\x1b[1;34m",
    "ack": "",
    "lost": "\x1b[31m",
}


class _Line:
    """A row of character cells, each with a style name."""

    def __init__(self, width: int) -> None:
        self.chars = [" "] * width
        self.styles = [""] * width

    def put(self, x: int, text: str, style: str = "") -> None:
        for i, ch in enumerate(text):
            if 0 <= x + i < len(self.chars):
                self.chars[x + i] = ch
                self.styles[x + i] = style

    def render(self, color: bool) -> str:
        if not color:
            return "".join(self.chars).rstrip()
        out: list[str] = []
        current = ""
        end = len("".join(self.chars).rstrip())
        for ch, st in zip(self.chars[:end], self.styles[:end], strict=True):
            if st != current:
                if current:
                    out.append(RESET)
                if st:
                    out.append(STYLE[st])
                current = st
            out.append(ch)
        if current:
            out.append(RESET)
        return "".join(out)


def _fit(tokens: list[str], room: int) -> tuple[list[str], list[str]]:
    """Split ``tokens`` into the ones that fit in ``room`` columns and the rest."""
    taken: list[str] = []
    used = 0
    for i, tok in enumerate(tokens):
        need = len(tok) + (1 if taken else 0)
        if used + need > room and taken:
            return taken, tokens[i:]
        taken.append(tok)
        used += need
    return taken, []


class TextRenderer:
    def __init__(self, ladder: Ladder, *, width: int = 80, color: bool = False,
                 absolute: bool = False) -> None:
        self.ladder = ladder
        self.width = max(MIN_WIDTH, min(MAX_WIDTH, width))
        self.color = color
        self.rows = build_rows(ladder, absolute)
        self.decimals = time_decimals(ladder)
        last = max((r.time for r in self.rows), default=0.0)
        self.time_w = max(len(format_time(last, self.decimals)), 4) + 2
        margin = 8
        n = max(len(ladder.lifelines), 2)
        left, right = self.time_w + margin, self.width - margin - 1
        self.xs = [left + round(i * (right - left) / (n - 1)) for i in range(n)]

    # -- pieces ------------------------------------------------------------------
    def _blank(self) -> _Line:
        line = _Line(self.width)
        for x in self.xs[:len(self.ladder.lifelines)]:
            line.put(x, "|", "line")
        return line

    def _with_time(self, row: Row) -> _Line:
        line = self._blank()
        if row.show_time:
            text = format_time(row.time, self.decimals)
            line.put(self.time_w - 2 - len(text), text, "time")
        return line

    def _centered(self, line: _Line, x: int, text: str, style: str) -> None:
        start = x - len(text) // 2
        start = max(0, min(start, self.width - len(text)))
        line.put(start, text, style)

    def _header(self) -> list[_Line]:
        names, roles = _Line(self.width), _Line(self.width)
        names.put(0, "time", "head")
        for x, life in zip(self.xs, self.ladder.lifelines, strict=False):
            self._centered(names, x, life.name, "head")
            if life.role:
                self._centered(roles, x, f"({life.role})", "")
        lines = [names]
        if any(life.role for life in self.ladder.lifelines):
            lines.append(roles)
        return lines

    def _arrow(self, row: Row) -> list[_Line]:
        item = row.item
        assert isinstance(item, SegmentItem) and row.label is not None
        style = arrow_kind(item)
        xs, xd = self.xs[item.src], self.xs[item.dst]
        a, b = min(xs, xd) + 1, max(xs, xd) - 1
        length = b - a + 1
        rightward = xd > xs
        main, rest = _fit(row.label.main, length - 6)
        text = " " + " ".join(main) + " "
        line = self._with_time(row)
        if item.dropped:
            # The arrow stops short of the receiver and ends in an X.
            reach = max(len(text) + 4, int(length * 0.72))
            reach = min(reach, length - 2)
            if rightward:
                lo, hi = a, a + reach - 1
                line.put(lo, "-" * (hi - lo), style)
                line.put(hi, "X", "rst")
            else:
                lo, hi = b - reach + 1, b
                line.put(lo + 1, "-" * (hi - lo), style)
                line.put(lo, "X", "rst")
                lo += 1
            span_lo, span_hi = (lo, hi - 1) if rightward else (lo, hi)
        else:
            line.put(a, "-" * length, style)
            if rightward:
                line.put(b, ">", style)
            else:
                line.put(a, "<", style)
            span_lo, span_hi = a + 1, b - 1
        mid = (span_lo + span_hi + 1) // 2
        start = max(span_lo + 1, mid - len(text) // 2)
        line.put(start, text, style)
        lines = [line]
        extra = rest + row.label.extra
        room = length - 4
        while extra:
            chunk, extra = _fit(extra, room)
            cont = self._blank()
            words = " ".join(chunk)[:room]
            cont.put(a + (length - len(words)) // 2, words, "extra")
            lines.append(cont)
        return lines

    def _states(self, row: Row) -> _Line:
        line = self._with_time(row)
        for st in row.states:
            self._centered(line, self.xs[st.endpoint], state_text(st),
                           "inferred" if st.inferred else "state")
        return line

    def _side_text(self, row: Row, text: str, endpoint: int | None, style: str) -> _Line:
        line = self._with_time(row)
        n = len(self.ladder.lifelines)
        lo, hi = self.xs[0] + 2, self.xs[n - 1] - 2
        room = hi - lo + 1
        text = text if len(text) <= room else text[:room - 1] + "…"
        if endpoint is None:
            line.put(lo + (room - len(text)) // 2, text, style)
        elif endpoint == n - 1:
            line.put(self.xs[endpoint] - 2 - len(text) + 1, text, style)
        else:
            line.put(self.xs[endpoint] + 2, text, style)
        return line

    # -- whole diagram -------------------------------------------------------------
    def lines(self) -> list[str]:
        out: list[_Line] = self._header()
        for row in self.rows:
            if row.kind == "arrow":
                out += self._arrow(row)
            elif row.kind == "states":
                out.append(self._states(row))
            elif row.kind == "timer":
                assert row.item is not None and not isinstance(row.item, NoteItem)
                out.append(self._side_text(row, f"timer: {row.text}",
                                           getattr(row.item, "endpoint", None), "timer"))
            else:
                endpoint = row.item.endpoint if isinstance(row.item, NoteItem) else None
                out.append(self._side_text(row, row.text, endpoint, "note"))
        rendered = [ln.render(self.color) for ln in out]
        legend = self.legend()
        if legend:
            rendered += ["", legend]
        return rendered

    def legend(self) -> str:
        parts = []
        if any(r.kind == "states" and any(s.inferred for s in r.states) for r in self.rows):
            parts.append("~STATE = inferred from the segments")
        if any(isinstance(r.item, SegmentItem) and r.item.dropped for r in self.rows):
            parts.append("X = segment lost on the way")
        return "   ".join(parts)


def render_text(ladder: Ladder, *, width: int = 80, color: bool = False,
                absolute: bool = False, header: bool = False) -> str:
    """The whole diagram as one string (no trailing newline).

    With ``header``, the ladder's title and explanation come first, wrapped
    to ``width``.
    """
    renderer = TextRenderer(ladder, width=width, color=color, absolute=absolute)
    lines: list[str] = []
    if header and ladder.title:
        title = ladder.title
        lines += [f"{STYLE['head']}{title}{RESET}" if color else title, ""]
    if header and ladder.explanation:
        lines += [*textwrap.wrap(ladder.explanation, renderer.width - 1), ""]
    lines += renderer.lines()
    return "\n".join(lines)
