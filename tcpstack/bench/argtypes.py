"""argparse types shared by ``tools/bench`` and ``tools/attack``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping


def positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"bad number {text!r} (> 0)")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"bad number {text!r} (> 0)")
    return value


def workload_list(names: Iterable[str],
                  groups: Mapping[str, tuple[str, ...]]) -> Callable[[str], list[str]]:
    """An argparse type for ``--only a,b,group``: the workloads, each once, in order."""
    known_names = tuple(names)

    def parse(text: str) -> list[str]:
        chosen: list[str] = []
        for name in (part.strip() for part in text.split(",")):
            found = groups.get(name) or ((name,) if name in known_names else None)
            if not found:
                known = ", ".join([*known_names, *groups])
                raise argparse.ArgumentTypeError(f"unknown workload {name!r} (one of {known})")
            chosen += [n for n in found if n not in chosen]
        return chosen

    return parse
