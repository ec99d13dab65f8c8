"""Results of scripts and how they are printed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum


class Status(Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass
class Result:
    path: str
    status: Status
    line: int = 0
    message: str = ""
    details: list[str] = field(default_factory=list)   # script packet / actual packet lines
    notes: list[str] = field(default_factory=list)     # what was ignored or mapped (-v)
    differences: list[str] = field(default_factory=list)   # --lenient: seen, not judged
    events: int = 0
    seconds: float = 0.0

    def lines(self, verbose: bool = False) -> list[str]:
        where = f"line {self.line}: " if self.line else ""
        if self.status is Status.PASS:
            out = [f"PASS {self.path}"]
        elif self.status is Status.SKIP:
            out = [f"SKIP {self.path}: {where}{self.message}"]
        else:
            out = [f"FAIL {self.path}", f"  {self.path}:{self.line}: {self.message}"
                   if self.line else f"  {self.message}"]
            out += [f"  {d}" for d in self.details]
        out += [f"  not judged: {d}" for d in self.differences]
        if verbose:
            out += [f"  note: {n}" for n in self.notes]
        return out


def summary(results: Iterable[Result]) -> str:
    results = list(results)
    count = {s: sum(1 for r in results if r.status is s) for s in Status}
    return (f"{count[Status.PASS]} passed, {count[Status.FAIL]} failed, "
            f"{count[Status.SKIP]} skipped")
