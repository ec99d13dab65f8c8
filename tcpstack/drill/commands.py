"""Backquoted shell lines: which ones the drill understands.

A target never hands a script's shell line to a shell. It reads the line into
``sysctl`` assignments (``sysctl [-q] [-w] key=value ...``, ``echo V >
/proc/sys/...``, and Linux's selftest ``defaults.sh``, whose settings are
known) or recognised no-ops (``tc qdisc ...``, ``ip tcp_metrics flush``); each
target then applies the assignments it can (the core maps a few onto
StackConfig / ConnectionOptions, the kernel writes per-namespace sysctls inside
its private namespace) and SKIPs the script at any other line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# The settings of Linux's tools/testing/selftests/net/packetdrill/defaults.sh (and
# of packetdrill's own gtests defaults): what a script that runs it expects.
LINUX_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.tcp_rmem", "4096 540000 15728640"),
    ("net.ipv4.tcp_wmem", "4096 262144 4194304"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.ipv4.tcp_syn_retries", "5"),
    ("net.ipv4.tcp_synack_retries", "5"),
    ("net.ipv4.tcp_frto", "2"),
    ("net.ipv4.tcp_sack", "1"),
    ("net.ipv4.tcp_dsack", "1"),
    ("net.ipv4.tcp_reordering", "3"),
    ("net.ipv4.tcp_congestion_control", "cubic"),
    ("net.ipv4.tcp_slow_start_after_idle", "0"),
    ("net.ipv4.tcp_early_retrans", "4"),
    ("net.ipv4.tcp_recovery", "1"),
    ("net.ipv4.tcp_tso_win_divisor", "3"),
    ("net.ipv4.tcp_ecn", "0"),
    ("net.ipv4.tcp_pacing_ss_ratio", "200"),
    ("net.ipv4.tcp_pacing_ca_ratio", "120"),
    ("net.ipv4.tcp_notsent_lowat", "4294967295"),
    ("net.ipv4.tcp_fastopen", "3"),
    ("net.ipv4.tcp_syncookies", "1"),
)


@dataclass(frozen=True, slots=True)
class ShellLine:
    sysctls: tuple[tuple[str, str], ...] = ()
    noops: tuple[str, ...] = ()          # parts understood and without effect here
    unsupported: str | None = None       # why the line cannot run


_REDIRECT = re.compile(r"\s*(?:[12]?>\s*/dev/null|2>&1)\s*")
_PROC_SYS = re.compile(r"^echo\s+(?P<value>.+?)\s*>\s*/proc/sys/(?P<path>[\w/.-]+)$")


def read_shell_line(text: str) -> ShellLine:
    sysctls: list[tuple[str, str]] = []
    noops: list[str] = []
    for part in re.split(r"\s*(?:;|&&|\n)\s*", text.strip()):
        part = _REDIRECT.sub(" ", part).strip()
        if not part:
            continue
        m = _PROC_SYS.match(part)
        if m:
            sysctls.append((m.group("path").replace("/", "."),
                            m.group("value").strip().strip("\"'")))
            continue
        try:
            words = shlex.split(part)
        except ValueError:
            return ShellLine(unsupported=f"cannot read shell line {part!r}")
        if not words:
            continue
        head = words[0]
        if head in ("sh", "bash") and len(words) == 2:
            words, head = words[1:], words[1]
        if head.endswith("defaults.sh") and len(words) == 1:
            sysctls.extend(LINUX_DEFAULTS)
            noops.append("defaults.sh: tc qdisc, ip tcp_metrics flush")
            continue
        if head == "sysctl":
            found = False
            for word in words[1:]:
                if word.startswith("-"):
                    continue
                if "=" not in word:
                    return ShellLine(unsupported=f"sysctl read without a check: {part!r}")
                key, value = word.split("=", 1)
                sysctls.append((key.strip(), value.strip()))
                found = True
            if not found:
                return ShellLine(unsupported=f"sysctl without a setting: {part!r}")
            continue
        if head in ("tc", "true", ":") or words[:3] == ["ip", "tcp_metrics", "flush"]:
            noops.append(part)
            continue
        return ShellLine(unsupported=f"shell command not supported: {part!r}")
    return ShellLine(tuple(sysctls), tuple(noops))
