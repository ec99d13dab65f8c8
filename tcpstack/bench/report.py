"""The benchmark's output: a Markdown table for people, JSON for programs."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from typing import Any

from tcpstack.bench.figures import FIGURES
from tcpstack.bench.stats import spread


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def summarise(samples: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    """One entry per figure that has samples: median/min/max per side and the ratio."""
    rows = []
    for figure in FIGURES:
        sides = samples.get(figure.key)
        if not sides:
            continue
        row: dict[str, Any] = {"figure": figure.key, "label": figure.label, "unit": figure.unit,
                               "higher_is_better": figure.higher_is_better,
                               "target": figure.target}
        for side in ("tcpstack", "kernel"):
            values = sides.get(side, [])
            row[side] = {**spread(values), "runs": values} if values else None
        stack, kernel = row["tcpstack"], row["kernel"]
        row["ratio"] = (stack["median"] / kernel["median"]
                        if stack and kernel and kernel["median"] else None)
        rows.append(row)
    return rows


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(side: dict[str, Any] | None, runs: int) -> str:
    if not side:
        return "failed"
    text = _number(side["median"])
    if len(side["runs"]) > 1:
        text += f" ({_number(side['min'])}–{_number(side['max'])})"
    if len(side["runs"]) < runs:
        text += f" [{len(side['runs'])}/{runs} runs]"
    return text


def offload_summary(modes: dict[str, str]) -> str:
    """``offloads on``, or ``offloads on (off: loss1-send, ...)`` when they differ."""
    if not modes:
        return "offloads unknown"
    values = list(modes.values())
    main = max(set(values), key=values.count)
    others = [name for name, mode in modes.items() if mode != main]
    text = f"tcpstack offloads {main}"
    if others:
        text += f" ({'on' if main == 'off' else 'off'}: {', '.join(others)})"
    return text


def markdown(report: dict[str, Any]) -> str:
    cfg, mach = report["config"], report["machine"]
    lines = [
        f"tcpstack bench — {mach['date']}, {mach['cpu']} ({mach['cores']} cores), "
        f"Python {mach['python']}, Linux {mach['kernel']}"
        + (f", load average {mach['load_before']:g} before / {mach['load_after']:g} after"
           if "load_before" in mach else ""),
        f"IPv{cfg.get('ip_version', 4)}; "
        f"{offload_summary(cfg['offload'])}; "
        + (f"busy polling {cfg['busy_poll_us']:g} µs; " if cfg.get("busy_poll_us") else "")
        + f"median (min–max) of {cfg['runs']} runs; "
        f"bulk {cfg['bulk_mb']:g} MB, under loss {cfg['loss_mb']:g} MB; "
        f"{cfg['rr_count']} round trips; {cfg['connect_count']} connects; "
        f"{cfg['idle_conns']} idle connections"
        + ("; congestion control tcpstack {tcpstack}, kernel {kernel}".format(
            **cfg["congestion_control"]) if "congestion_control" in cfg else ""),
        "",
        "| workload | unit | tcpstack | kernel↔kernel (veth) | tcpstack/kernel | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in report["results"]:
        ratio = f"{row['ratio']:.3g}×" if row["ratio"] is not None else "–"
        lines.append(f"| {row['label']} | {row['unit']} | {_cell(row['tcpstack'], cfg['runs'])} "
                     f"| {_cell(row['kernel'], cfg['runs'])} | {ratio} | {row['target']} |")
    lines += _pipe_against_api(report["results"])
    notes = report.get("notes", {})
    if notes.get("kernel_loss_dropped"):
        dropped = ", ".join(f"{k}: {v}" for k, v in notes["kernel_loss_dropped"].items())
        lines += ["", f"- kernel baseline packets dropped by nftables per run: {dropped}"]
    for note in sorted(set(notes.get("offload_notes", {}).values())):
        lines.append(f"- tcpstack: {note}")
    if notes.get("stack_timeouts"):
        pairs = ", ".join(f"{k}: {v} / {notes.get('kernel_timeouts', {}).get(k, '–')}"
                          for k, v in notes["stack_timeouts"].items())
        lines.append(f"- retransmission timeouts of the sender per run, tcpstack run / "
                     f"kernel baseline: {pairs}")
    if notes.get("stack_retransmits"):
        rtx = ", ".join(f"{k}: {v}" for k, v in notes["stack_retransmits"].items())
        lines += [f"- tcpstack retransmitted segments per run: {rtx}"]
    if notes.get("kernel_sender_retransmits"):
        rtx = ", ".join(f"{k}: {v}" for k, v in notes["kernel_sender_retransmits"].items())
        lines += [f"- segments the kernel resent while sending to tcpstack, per run: {rtx}"]
    for key, what in (("stack_cpu_per_connect", "connect+close"),
                      ("stack_cpu_per_accept", "connection served")):
        if notes.get(key):
            lines += [f"- tcpstack CPU time per {what}, µs per run: {notes[key]}"]
    if report.get("errors"):
        lines.append("")
    for error in report.get("errors", []):
        lines.append(f"- failed: {error}")
    return "\n".join(lines) + "\n"


PIPE_AGAINST = {"pipe-send": "bulk-send", "pipe-recv": "bulk-recv"}


def _pipe_against_api(results: list[dict[str, Any]]) -> list[str]:
    """The CLI through a pipe against the API's bulk transfer, tcpstack's medians."""
    medians = {row["figure"]: row["tcpstack"]["median"] for row in results
               if row["tcpstack"]}
    pairs = [f"{pipe} {medians[pipe] / medians[bulk]:.3g}×"
             for pipe, bulk in PIPE_AGAINST.items()
             if medians.get(pipe) and medians.get(bulk)]
    if not pairs:
        return []
    return ["", "- tcpstack's CLI through a pipe / its API's bulk transfer (medians of "
            "this run): " + ", ".join(pairs)]


def write_json(report: dict[str, Any], path: str) -> None:
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
