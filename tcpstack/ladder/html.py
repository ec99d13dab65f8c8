"""The ladder diagram as one self-contained HTML page: explanation, inline SVG, segment table."""

from __future__ import annotations

from html import escape

from tcpstack.ladder.labels import Numbering, flag_word, segment_label
from tcpstack.ladder.layout import format_time, time_decimals
from tcpstack.ladder.model import Ladder, SegmentItem, StateItem
from tcpstack.ladder.svg import render_svg

CSS = """
body { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1000px; color: #111827; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .3em; }
p.explanation { font-size: 1.05em; max-width: 60em; }
figure { margin: 1.5em 0; overflow-x: auto; }
table { border-collapse: collapse; font-family: 'DejaVu Sans Mono', Menlo, monospace;
        font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 3px 8px; text-align: left; }
th { background: #f3f4f6; }
tr.lost td { color: #dc2626; text-decoration: line-through; }
td.num { text-align: right; }
.muted { color: #6b7280; font-size: .9em; }
"""


def _states_after(ladder: Ladder, index: int) -> str:
    """The state changes written right after item ``index`` (until the next segment)."""
    out = []
    for item in ladder.items[index + 1:]:
        if isinstance(item, SegmentItem):
            break
        if isinstance(item, StateItem):
            who = ladder.lifelines[item.endpoint].name
            out.append(f"{who} {'~' if item.inferred else ''}{item.new}")
    return ", ".join(out)


def render_html(ladder: Ladder, *, absolute: bool = False) -> str:
    """A complete HTML document with no external resources."""
    title = ladder.title or "TCP ladder diagram"
    numbering = Numbering(ladder, absolute)
    decimals = time_decimals(ladder)
    t0 = ladder.start_time
    rows = []
    n = 0
    for index, item in enumerate(ladder.items):
        if not isinstance(item, SegmentItem):
            continue
        n += 1
        seg = item.segment
        label = segment_label(item, numbering, all_timestamps=True)
        options = " ".join(tok for tok in label.extra if not tok.startswith("("))
        notes = [item.note] if item.note else []
        if item.dropped:
            notes.append("lost")
        cells = [
            str(n),
            format_time(item.time - t0, decimals),
            f"{ladder.lifelines[item.src].name} &rarr; {ladder.lifelines[item.dst].name}",
            escape(flag_word(seg.flags)),
            str(numbering.seq(item.src, seg.seq)),
            str(numbering.seq(item.dst, seg.ack)) if seg.flags & 0x10 else "",
            str(len(seg.payload)),
            f"{numbering.window(item)} <span class=muted>({seg.window})</span>",
            escape(options),
            escape(", ".join(notes)),
            escape(_states_after(ladder, index)),
        ]
        cls = ' class="lost"' if item.dropped else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    numbers = "absolute" if absolute else "relative to each side's initial sequence number"
    explanation = (f'<p class="explanation">{escape(ladder.explanation)}</p>'
                   if ladder.explanation else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
{explanation}
<figure>
{render_svg(ladder, absolute=absolute)}
</figure>
<h2>Segments</h2>
<p class="muted">Sequence and acknowledgment numbers are {numbers}; the window is shown
scaled, with the raw header field in parentheses. States marked ~ are inferred from
the segments; the others were reported by the stack itself.</p>
<table>
<thead><tr><th>#</th><th>time (s)</th><th>from &rarr; to</th><th>flags</th><th>seq</th>
<th>ack</th><th>len</th><th>win</th><th>options</th><th>note</th><th>states after</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""
