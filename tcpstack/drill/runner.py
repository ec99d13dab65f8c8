"""Finding scripts, running each against a target, printing results."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from tcpstack.drill.engine import FIRST_REMOTE_PORT, Engine
from tcpstack.drill.model import DrillSyntaxError
from tcpstack.drill.parser import parse_script
from tcpstack.drill.report import Result, Status, summary
from tcpstack.drill.target import Target
from tcpstack.errors import UsageError

TARGET_NAMES = ("core", "kernel")


def find_scripts(paths: Iterable[str]) -> list[str]:
    """Files as given; directories searched recursively for ``*.pkt`` (sorted).
    A missing or unreadable path is a one-line UsageError."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            matches = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                matches += [os.path.join(root, f) for f in sorted(files) if f.endswith(".pkt")]
            if not matches:
                raise UsageError(f"{path}: no .pkt scripts in this directory")
            found += matches
        elif os.path.exists(path):
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    for path in found:
        if not os.access(path, os.R_OK) or not os.path.isfile(path):
            raise UsageError(f"{path}: not a readable file")
    return found


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def run_script(path: str, target: Target, *, strict: bool = True, verbose: bool = False,
               tolerance_usecs: int | None = None, remote_port: int = FIRST_REMOTE_PORT,
               log: Callable[[str], None] = print, ip_version: str | None = None,
               mtu: int | None = None) -> Result:
    """One script. ``ip_version`` ("ipv4"/"ipv6") overrides the script's own
    option, as packetdrill's command line does; ``mtu`` is the MTU of a script
    that sets none."""
    text = read_text(path)
    try:
        script = parse_script(text, path, target.name)
    except DrillSyntaxError as exc:
        return Result(path, Status.SKIP, exc.line, f"parse error: {exc.message}")
    engine = Engine(script, target, strict=strict, verbose=verbose,
                    tolerance_usecs=tolerance_usecs, log=log, remote_port=remote_port,
                    ip_version=ip_version, mtu=mtu)
    return engine.run()


@contextmanager
def open_target(name: str, **kw: object) -> Iterator[Target]:
    """A target ready for scripts; the kernel target's namespace is removed on exit."""
    if name == "core":
        from tcpstack.drill.core_target import CoreTarget
        yield CoreTarget()
        return
    if name == "kernel":
        from tcpstack.drill.kernel_target import KernelTarget
        target = KernelTarget(**kw)   # type: ignore[arg-type]
        target.open()
        try:
            yield target
        finally:
            target.close()
        return
    raise UsageError(f"unknown target {name!r} (choose from {', '.join(TARGET_NAMES)})")


def run_all(paths: Iterable[str], target_name: str = "core", *, strict: bool = True,
            verbose: bool = False, tolerance_usecs: int | None = None,
            log: Callable[[str], None] = print, ip_version: str | None = None,
            mtu: int | None = None) -> list[Result]:
    scripts = find_scripts(paths)
    results: list[Result] = []
    with open_target(target_name) as target:
        for index, path in enumerate(scripts):
            result = run_script(path, target, strict=strict, verbose=verbose,
                                tolerance_usecs=tolerance_usecs,
                                remote_port=FIRST_REMOTE_PORT + (index * 16) % 20000, log=log,
                                ip_version=ip_version, mtu=mtu)
            results.append(result)
            for line in result.lines(verbose):
                log(line)
    log(summary(results))
    return results
