"""The ladder diagram as a standalone SVG document (opens in any browser)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from tcpstack.ladder.labels import arrow_kind
from tcpstack.ladder.layout import Row, build_rows, format_time, state_text, time_decimals
from tcpstack.ladder.model import Ladder, NoteItem, SegmentItem

WIDTH = 960
TIME_X = 74            # right edge of the time column
FIRST_X = 200          # leftmost lifeline
LAST_X = WIDTH - 150   # rightmost lifeline
TOP = 78               # first row starts here
CHAR_W = 7.8           # width of one 13px monospace character
SLANT = 12             # an arrow ends this much lower than it starts

COLORS = {
    "syn": "#15803d",
    "fin": "#7e22ce",
    "rst": "#dc2626",
    "data": "#1d4ed8",
    "ack": "#374151",
    "lost": "#dc2626",
}

STYLE = """
  text { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 13px; }
  .head { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; font-size: 15px;
          font-weight: bold; fill: #111827; }
  .role { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; font-size: 13px;
          fill: #4b5563; }
  .time { fill: #6b7280; font-size: 12px; }
  .extra { fill: #6b7280; font-size: 12px; }
  .state { font-weight: bold; fill: #1e3a8a; font-size: 12px; }
  .inferred { fill: #92400e; font-size: 12px; font-style: italic; }
  .timer { fill: #b45309; font-size: 12px; }
  .note { fill: #4b5563; font-size: 12px; font-style: italic; }
  .legend { fill: #374151; font-size: 12px; }
"""


def _wrap(tokens: list[str], max_chars: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for tok in tokens:
        if current and len(current) + 1 + len(tok) > max_chars:
            lines.append(current)
            current = tok
        else:
            current = f"{current} {tok}" if current else tok
    if current:
        lines.append(current)
    return lines


class SvgRenderer:
    def __init__(self, ladder: Ladder, absolute: bool = False) -> None:
        self.ladder = ladder
        self.rows = build_rows(ladder, absolute)
        self.decimals = time_decimals(ladder)
        n = max(len(ladder.lifelines), 2)
        self.xs = [FIRST_X + (LAST_X - FIRST_X) * i / (n - 1) for i in range(n)]
        self.parts: list[str] = []
        self.y = TOP

    def _text(self, x: float, y: float, text: str, cls: str = "", anchor: str = "start",
              fill: str | None = None) -> None:
        attrs = f' class="{cls}"' if cls else ""
        if fill:
            attrs += f' fill="{fill}"'
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{attrs}>'
                          f"{escape(text)}</text>")

    def _time(self, row: Row, y: float) -> None:
        if row.show_time:
            self._text(TIME_X, y, format_time(row.time, self.decimals), "time", "end")

    def _arrow(self, row: Row) -> None:
        item = row.item
        assert isinstance(item, SegmentItem) and row.label is not None
        style = arrow_kind(item)
        color = COLORS[style]
        x1, x2 = self.xs[item.src], self.xs[item.dst]
        span = abs(x2 - x1)
        max_chars = int((span - 20) / CHAR_W)
        main = _wrap(row.label.main, max_chars)
        extra = _wrap(main[1:] + row.label.extra if len(main) > 1 else row.label.extra,
                      max_chars)
        y1 = self.y + 18
        y2 = y1 + SLANT
        self._time(row, y1 + 4)
        mid = (x1 + x2) / 2
        self._text(mid, y1 + SLANT / 2 - 5, main[0], anchor="middle", fill=color)
        if item.dropped:
            frac = 0.7
            xe, ye = x1 + (x2 - x1) * frac, y1 + SLANT * frac
            self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{xe:.1f}" y2="{ye:.1f}" '
                              f'stroke="{color}" stroke-width="1.6" stroke-dasharray="6 4"/>')
            d = 7
            self.parts.append(
                f'<path d="M{xe - d:.1f},{ye - d:.1f} L{xe + d:.1f},{ye + d:.1f} '
                f'M{xe - d:.1f},{ye + d:.1f} L{xe + d:.1f},{ye - d:.1f}" '
                f'stroke="{COLORS["rst"]}" stroke-width="3"/>')
        else:
            self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                              f'stroke="{color}" stroke-width="1.6" '
                              f'marker-end="url(#head-{style})"/>')
        y = y2 + 15
        for line in extra:
            self._text(mid, y, line, "extra", "middle")
            y += 15
        self.y = y - 4

    def _states(self, row: Row) -> None:
        y = self.y + 16
        self._time(row, y + 4)
        for st in row.states:
            text = state_text(st)
            w = len(text) * 7.3 + 14
            x = self.xs[st.endpoint]
            if st.inferred:
                box = 'fill="#fff7ed" stroke="#d97706" stroke-dasharray="4 3"'
            else:
                box = 'fill="#dbeafe" stroke="#2563eb"'
            self.parts.append(f'<rect x="{x - w / 2:.1f}" y="{y - 11:.1f}" width="{w:.1f}" '
                              f'height="20" rx="6" {box} stroke-width="1.2"/>')
            self._text(x, y + 3.5, text, "inferred" if st.inferred else "state", "middle")
        self.y = y + 12

    def _side(self, row: Row, text: str, endpoint: int | None, cls: str, icon: bool) -> None:
        y = self.y + 16
        self._time(row, y + 4)
        n = len(self.ladder.lifelines)
        if endpoint is None:
            x, anchor = (self.xs[0] + self.xs[n - 1]) / 2, "middle"
        elif endpoint == n - 1:
            x, anchor = self.xs[endpoint] - 10, "end"
        else:
            x, anchor = self.xs[endpoint] + 10, "start"
        if icon and endpoint is not None:
            cx = self.xs[endpoint]
            self.parts.append(f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="6" fill="#fef3c7" '
                              f'stroke="#b45309" stroke-width="1.4"/>'
                              f'<path d="M{cx:.1f},{y - 4:.1f} L{cx:.1f},{y:.1f} '
                              f'L{cx + 3:.1f},{y + 1.5:.1f}" stroke="#b45309" '
                              f'stroke-width="1.3" fill="none"/>')
        self._text(x, y + 4, text, cls, anchor)
        self.y = y + 8

    def render(self) -> str:
        lifelines = self.ladder.lifelines
        for row in self.rows:
            if row.kind == "arrow":
                self._arrow(row)
            elif row.kind == "states":
                self._states(row)
            elif row.kind == "timer":
                endpoint = getattr(row.item, "endpoint", None)
                self._side(row, row.text, endpoint, "timer", icon=True)
            else:
                endpoint = row.item.endpoint if isinstance(row.item, NoteItem) else None
                self._side(row, row.text, endpoint, "note", icon=False)
        bottom = self.y + 16
        legend = self._legend(bottom + 22)
        height = bottom + 22 + 18 * len(legend) + 10
        head: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}">',
            f"<title>{escape(self.ladder.title or 'TCP ladder diagram')}</title>",
            f"<style>{STYLE}</style>",
            "<defs>",
        ]
        for name, color in COLORS.items():
            head.append(f'<marker id="head-{name}" viewBox="0 0 10 10" refX="9" refY="5" '
                        f'markerWidth="9" markerHeight="9" orient="auto-start-reverse">'
                        f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>')
        head.append("</defs>")
        head.append(f'<rect width="{WIDTH}" height="{height:.0f}" fill="#ffffff"/>')
        head.append(f'<text x="{TIME_X}" y="26" text-anchor="end" class="role">time (s)</text>')
        for x, life in zip(self.xs, lifelines, strict=False):
            head.append(f'<line x1="{x:.1f}" y1="{TOP - 14}" x2="{x:.1f}" y2="{bottom:.1f}" '
                        f'stroke="#9ca3af" stroke-width="2"/>')
            head.append(f'<text x="{x:.1f}" y="26" text-anchor="middle" class="head">'
                        f"{escape(life.name)}</text>")
            if life.role:
                head.append(f'<text x="{x:.1f}" y="46" text-anchor="middle" class="role">'
                            f"{escape(life.role)}</text>")
        return "\n".join([*head, *self.parts, *legend, "</svg>"]) + "\n"

    def _legend(self, y: float) -> list[str]:
        entries: list[str] = []
        if any(r.kind == "states" and any(not s.inferred for s in r.states) for r in self.rows):
            entries.append("STATE  traced: the stack reported this transition")
        if any(r.kind == "states" and any(s.inferred for s in r.states) for r in self.rows):
            entries.append("~STATE inferred from the segments (dashed box)")
        if any(isinstance(r.item, SegmentItem) and r.item.dropped for r in self.rows):
            entries.append("X      segment lost on the way")
        if any(r.kind == "timer" for r in self.rows):
            entries.append("clock  a timer fired")
        entries.append("colours: SYN green, FIN purple, RST red, data blue, ACK grey")
        return [f'<text x="20" y="{y + 18 * i:.1f}" class="legend">{escape(e)}</text>'
                for i, e in enumerate(entries)]


def render_svg(ladder: Ladder, *, absolute: bool = False) -> str:
    """A standalone SVG document."""
    return SvgRenderer(ladder, absolute).render()

