"""What the attack reports: one ``Figure`` per table row, in table order. The
labels carry the sizes of the run (``--quick`` shrinks them)."""

from __future__ import annotations

from dataclasses import dataclass

from tcpstack.attack.settings import Settings


@dataclass(frozen=True)
class Figure:
    key: str
    workload: str
    label: str
    unit: str
    higher_is_better: bool
    kernel: bool = True          # False: no kernel counterpart (the row shows n/a)


def figures(s: Settings) -> list[Figure]:
    mib = s.window / (1 << 20)
    rows = [
        Figure("flood-legit", "syn-flood", f"legitimate clients completed (of {s.flood_clients})",
               "clients", True),
        Figure("flood-connect-p50", "syn-flood", "legitimate connect time, median", "ms", False),
        Figure("flood-connect-p99", "syn-flood", "legitimate connect time, p99", "ms", False),
        Figure("flood-synack", "syn-flood", "SYN-ACKs sent per spoofed SYN", "per SYN", False),
        Figure("flood-rst", "syn-flood", "RSTs sent per spoofed SYN", "per SYN", False),
        Figure("flood-reached", "syn-flood",
               f"spoofed SYNs that reached the target (of {s.flood_syns:,})", "%", True),
        Figure("flood-rate", "syn-flood", "spoofed SYNs sent", "k/s", True),
        Figure("flood-rss", "syn-flood", "target RSS growth, peak", "MB", False, kernel=False),
        Figure("flood-cpu", "syn-flood", "CPU absorbing the flood", "s", False),
        Figure("trickle-legit", "syn-trickle",
               f"legitimate clients completed after {s.trickle_syns:,} SYNs at "
               f"{s.trickle_rate:,}/s (of {s.trickle_clients})", "clients", True),
        Figure("trickle-synack", "syn-trickle", "SYN-ACKs sent per spoofed SYN", "per SYN",
               False),
        Figure("hol-inorder-cpu", "hol-loss", f"{mib:g} MiB in order: CPU", "ms", False),
        Figure("hol-hole-cpu", "hol-loss", f"{mib:g} MiB behind a 1-segment hole: CPU", "ms",
               False),
        Figure("hol-fill-ack", "hol-loss", "hole filled → cumulative ACK of the window", "ms",
               False),
        Figure("hol-held", "hol-loss", "first cumulative ACK after the fill covers", "MiB",
               True),
    ]
    for count in s.adjacent_counts:
        rows.append(Figure(f"adjacent-{count}-cpu", "ooo-adjacent",
                           f"{count:,} × 40 B behind a 1-byte hole: CPU", "ms", False))
    for count in s.adjacent_counts:
        rows.append(Figure(f"adjacent-{count}-per-seg", "ooo-adjacent",
                           f"{count:,} × 40 B behind a 1-byte hole: CPU per segment", "µs",
                           False))
    rows += [
        Figure("bomb-rate", "ooo-bomb",
               f"{s.bomb_count:,} 1-byte segments, every other byte: taken in", "seg/s", True),
        Figure("bomb-reached", "ooo-bomb", "segments that reached the target", "%", True),
        Figure("bomb-acks", "ooo-bomb", "ACKs per segment taken in", "per seg", False),
        Figure("bomb-cpu", "ooo-bomb", "CPU per segment taken in", "µs", False),
        Figure("bomb-intact", "ooo-bomb", "connection intact afterwards (1 = yes)", "yes", True),
        Figure("storm-oow", "invalid-storm",
               f"ACKs drawn by {s.storm_oow:,} out-of-window pure ACKs", "ACKs", False),
        Figure("storm-rst", "invalid-storm",
               f"challenge ACKs drawn by {s.storm_rsts:,} in-window inexact RSTs in 1 s",
               "ACKs", False),
        Figure("storm-blind", "invalid-storm",
               f"ACKs drawn by {s.storm_blind:,} blind RSTs + {s.storm_blind:,} blind SYNs",
               "ACKs", False),
        Figure("storm-intact", "invalid-storm", "connection and its data intact (1 = yes)",
               "yes", True),
    ]
    return rows
