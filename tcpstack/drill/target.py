"""What the engine needs of a stack under test, and the outcomes it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Skip(Exception):
    """The script uses something this target cannot do: SKIP at ``line``."""

    def __init__(self, reason: str, line: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


class Fail(Exception):
    """The stack did not do what the script says."""

    def __init__(self, message: str, line: int = 0, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.details = details or []


@dataclass
class Outcome:
    """A system call's result: ``result`` and ``errno`` as the C call would give,
    ``value`` for what getsockopt wrote into its buffer."""

    result: int
    errno: int = 0
    value: object = None


class _Block:
    def __repr__(self) -> str:
        return "BLOCK"


BLOCK = _Block()   # the call would block (a blocking socket and nothing to do yet)


@dataclass
class CallHandle:
    """A blocking call in progress (``t1...t2 call()``)."""

    name: str
    done: bool = False
    outcome: Outcome | None = None
    end_time: float = 0.0         # seconds since the script's start


@dataclass
class Env:
    """Addresses and ports of a run: packetdrill's defaults unless the script's
    options change them."""

    local_ip: str = "192.168.0.1"
    remote_ip: str = "192.0.2.1"
    ip_version: int = 4
    bind_port: int = 8080
    connect_port: int = 8080
    mtu: int = 1500
    notes: list[str] = field(default_factory=list)


    def use_ipv6(self) -> None:
        """``--ip_version=ipv6``: the addresses Linux's packetdrill selftests use."""
        self.ip_version = 6
        self.local_ip, self.remote_ip = IPV6_LOCAL_IP, IPV6_REMOTE_IP


IPV6_LOCAL_IP = "fd3d:a0b:17d6::1"      # fd3d:0a0b:17d6::1 as inet_ntop writes it
IPV6_REMOTE_IP = "fd3d:fa7b:d17d::1"


@dataclass
class Flow:
    """The live 4-tuple of the connection under test (local port 0: not known yet)."""

    local_port: int
    remote_port: int


class Target(Protocol):
    name: str
    default_tolerance_usecs: int
    any_time_wait: float          # seconds to wait for a packet at time "*"

    def begin(self, env: Env) -> None: ...
    def start_clock(self) -> None: ...
    def finish(self) -> None: ...
    def now(self) -> float: ...
    def advance(self, until: float) -> None: ...
    def inject(self, raw: bytes) -> None: ...
    def next_packet(self, deadline: float) -> tuple[float, bytes] | None: ...
    def syscall(self, name: str, args: list[object], expected: int | None) -> Outcome | _Block:
        ...
    def start_blocking(self, name: str, args: list[object],
                       expected: int | None) -> CallHandle: ...
    def tcp_info(self, fd: int | None, flow: Flow | None) -> dict[str, int]: ...
    def apply_sysctls(self, settings: tuple[tuple[str, str], ...], line: int) -> list[str]: ...
