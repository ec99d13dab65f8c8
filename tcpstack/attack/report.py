"""The attack's output: a Markdown table for people, JSON for programs."""

from __future__ import annotations

from typing import Any

from tcpstack.attack.figures import Figure
from tcpstack.bench.report import (
    machine,
    write_json,
)
from tcpstack.bench.stats import spread

__all__ = ["machine", "markdown", "summarise", "write_json"]


def summarise(figures: list[Figure],
              samples: dict[str, dict[str, list[float | None]]]) -> list[dict[str, Any]]:
    """One row per figure that was measured: per side the median/min/max of the
    runs that gave a value (``runs`` keeps every run, None where none), the ratio."""
    rows = []
    for figure in figures:
        sides = samples.get(figure.key)
        if not sides:
            continue
        row: dict[str, Any] = {"figure": figure.key, "workload": figure.workload,
                               "label": figure.label, "unit": figure.unit,
                               "higher_is_better": figure.higher_is_better}
        for side in ("tcpstack", "kernel"):
            runs = sides.get(side, [])
            values = [v for v in runs if v is not None]
            if side == "kernel" and not figure.kernel:
                row[side] = None
            elif values:
                row[side] = {**spread(values), "runs": runs}
            else:
                row[side] = {"median": None, "min": None, "max": None, "runs": runs}
        stack, kernel = row["tcpstack"], row["kernel"]
        row["ratio"] = (stack["median"] / kernel["median"]
                        if stack and kernel and stack["median"] is not None
                        and kernel["median"] else None)
        rows.append(row)
    return rows


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.2g}"


def _cell(side: dict[str, Any] | None, runs: int, applicable: bool = True) -> str:
    if not applicable:
        return "n/a"
    if not side:
        return "failed"
    if side["median"] is None:
        return "–" if side["runs"] else "failed"
    text = _number(side["median"])
    measured = len([v for v in side["runs"] if v is not None])
    if measured > 1 and side["min"] != side["max"]:
        text += f" ({_number(side['min'])}–{_number(side['max'])})"
    if measured < runs:
        text += f" [{measured}/{runs} runs]"
    return text


def markdown(report: dict[str, Any], figures: list[Figure]) -> str:
    cfg, mach = report["config"], report["machine"]
    applicable = {f.key: f.kernel for f in figures}
    lines = [
        f"tcpstack attack — {mach['date']}, {mach['cpu']} ({mach['cores']} cores), "
        f"Python {mach['python']}, Linux {mach['kernel']}, load average "
        f"{mach['load_before']:g} before / {mach['load_after']:g} after",
        f"median (min–max) of {cfg['runs']} runs; tcpstack on its TUN vs the kernel behind a "
        f"veth, same addresses, same router; CPU = target process + ksoftirqd + the kernel "
        f"time of the attacker's sends (where the kernel does a packet's receive work)",
        "",
        "| workload | figure | unit | tcpstack | kernel | tcpstack/kernel |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in report["results"]:
        ratio = f"{row['ratio']:.3g}×" if row["ratio"] is not None else "–"
        lines.append(
            f"| {row['workload']} | {row['label']} | {row['unit']} "
            f"| {_cell(row['tcpstack'], cfg['runs'])} "
            f"| {_cell(row['kernel'], cfg['runs'], applicable.get(row['figure'], True))} "
            f"| {ratio} |")
    notes = report.get("notes", {})
    lines.append("")
    lines += [f"- {line}" for line in _notes(report)]
    if notes.get("seconds"):
        took = ", ".join(f"{name} {secs:.0f} s" for name, secs in notes["seconds"].items())
        lines.append(f"- time taken: {took}")
    if report.get("errors"):
        lines.append("")
    for error in report.get("errors", []):
        lines.append(f"- failed: {error}")
    return "\n".join(lines) + "\n"


def _per_side(details: dict[str, list[dict[str, Any]]], pick: Any) -> str:
    parts = []
    for side in ("tcpstack", "kernel"):
        runs = details.get(side, [])
        if runs:
            parts.append(f"{side} {', '.join(str(pick(run)) for run in runs)}")
    return "; ".join(parts)


def _failures(run: dict[str, Any]) -> str:
    failures = run.get("clients", {}).get("failures", {})
    return " + ".join(f"{n} {kind}" for kind, n in sorted(failures.items())) or "none"


def _notes(report: dict[str, Any]) -> list[str]:
    """What a reader needs to read the table right (sizes, methods, per-run extras)."""
    cfg = report["config"]["settings"]
    details = report.get("notes", {}).get("details", {})
    lines = []
    if "syn-flood" in details or "syn-trickle" in details:
        lines.append(
            f"syn-flood / syn-trickle: spoofed sources 10.66.0.0/16 written as pre-built frames "
            f"into the attacker's veth (sendmmsg); the legitimate clients (kernel sockets) start "
            f"after {cfg['flood_go_after']:,} SYNs (syn-trickle: after all) and try for "
            f"{cfg['client_timeout']:g} s; completed = connected and one byte echoed; SYN-ACKs "
            f"and RSTs to spoofed addresses counted by nftables on the attacker's veth until "
            f"the clients end; 'reached the target' excludes what the router could not queue "
            f"on the target's link (tcpstack's TUN holds 4,096 packets)")
    if "syn-flood" in details:
        lines.append("syn-flood legitimate clients that failed, per run: "
                     + _per_side(details["syn-flood"], _failures))
    if "syn-trickle" in details:
        lines.append("syn-trickle legitimate clients that failed, per run: "
                     + _per_side(details["syn-trickle"], _failures))
    if {"hol-loss", "ooo-adjacent", "ooo-bomb"} & set(details):
        lines.append(
            "hol-loss / ooo-adjacent / ooo-bomb: the attacker is the peer (crafted handshake "
            "and segments, 1460-byte MSS, SACK, no timestamps); each connection first sends "
            "in order until the target's window holds what follows; the kernel target has a "
            "12 MiB SO_RCVBUF so that its window reaches 4 MiB as tcpstack's 4 MiB buffer "
            "does; at most 2,048 of our segments wait in the target's link queue (tcpstack "
            "reads its TUN as fast as it can; the kernel takes each at once); what the target "
            "dropped is resent after the fill")
    if "invalid-storm" in details:
        lines.append("invalid-storm blind segments that fell inside the window, per run: "
                     + _per_side(details["invalid-storm"],
                                 lambda run: run.get("blind", {}).get("in_window", "?")))
    return lines
