"""The parsed form of a packetdrill script: frozen dataclasses, no behaviour.

Times are microseconds (ints), as packetdrill keeps them. Sequence numbers,
ACKs and SACK blocks are kept exactly as written; ``seqmap`` maps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DrillSyntaxError(Exception):
    """A script that does not parse (or is semantically invalid), at ``line``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class TimeKind(Enum):
    ABSOLUTE = "absolute"          # 0.100
    RELATIVE = "relative"          # +.1
    ANY = "any"                    # *
    ABSOLUTE_RANGE = "abs-range"   # 0.1~0.2
    RELATIVE_RANGE = "rel-range"   # +0.1~+0.2


@dataclass(frozen=True, slots=True)
class EventTime:
    kind: TimeKind
    usecs: int = 0
    end_usecs: int | None = None   # ranges only

    def __str__(self) -> str:
        def s(us: int) -> str:
            return f"{us / 1e6:.6f}".rstrip("0").rstrip(".") or "0"
        if self.kind is TimeKind.ANY:
            return "*"
        if self.kind is TimeKind.RELATIVE:
            return "+" + s(self.usecs)
        if self.kind is TimeKind.ABSOLUTE_RANGE:
            return f"{s(self.usecs)}~{s(self.end_usecs or 0)}"
        if self.kind is TimeKind.RELATIVE_RANGE:
            return f"+{s(self.usecs)}~+{s(self.end_usecs or 0)}"
        return s(self.usecs)


# -- TCP packets --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TcpOption:
    """One option as written: ``kind`` is packetdrill's name (``mss``, ``wscale``,
    ``sackOK``, ``sack``, ``TS``, ``nop``, ``eol``, ``md5``, ``FO``, ``FOEXP``)."""

    kind: str
    values: tuple[int, ...] = ()        # mss/wscale: (n,); TS: (val, ecr); sack: (l, r, l, r...)
    blob: str = ""                      # md5 digest / fast open cookie (hex text)

    def __str__(self) -> str:
        if self.kind in ("mss", "wscale"):
            return f"{self.kind} {self.values[0]}"
        if self.kind == "TS":
            return f"TS val {self.values[0]} ecr {self.values[1]}"
        if self.kind == "sack":
            pairs = zip(self.values[::2], self.values[1::2], strict=True)
            return "sack " + " ".join(f"{left}:{right}" for left, right in pairs)
        if self.kind in ("md5", "FO", "FOEXP"):
            return f"{self.kind} {self.blob}".rstrip()
        return self.kind


@dataclass(frozen=True, slots=True)
class PacketSpec:
    """``< S. 0:0(0) ack 1 win 65535 <mss 1460,...>`` and friends."""

    direction: str                       # "<" inbound, ">" outbound
    flags: str                           # packetdrill letters: . F S R P U E W A
    seq: int
    end_seq: int
    payload_len: int
    ack: int | None = None               # None: not written
    window: int | None = None            # None: not written (outbound: not checked)
    urgent: int = 0
    options: tuple[TcpOption, ...] | None = ()   # None: <...> (not checked)
    src_port: int | None = None          # explicit "PORT>PORT" (rare)
    dst_port: int | None = None
    unsupported: str | None = None       # parsed, but no target can run it (why)

    @property
    def inbound(self) -> bool:
        return self.direction == "<"

    def flag(self, letter: str) -> bool:
        return letter in self.flags

    def __str__(self) -> str:
        text = f"{self.direction} {self.flags or '-'} {self.seq}:{self.end_seq}({self.payload_len})"
        if self.ack is not None:
            text += f" ack {self.ack}"
        if self.window is not None:
            text += f" win {self.window}"
        if self.urgent:
            text += f" urg {self.urgent}"
        if self.options is None:
            text += " <...>"
        elif self.options:
            text += " <" + ",".join(str(o) for o in self.options) + ">"
        return text


# -- system call expressions ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ellipsis_:
    def __str__(self) -> str:
        return "..."


@dataclass(frozen=True, slots=True)
class Int:
    value: int
    hex: bool = False

    def __str__(self) -> str:
        return hex(self.value) if self.hex else str(self.value)


@dataclass(frozen=True, slots=True)
class Word:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Str:
    text: str
    trailing_ellipsis: bool = False

    def __str__(self) -> str:
        return f'"{self.text}"' + ("..." if self.trailing_ellipsis else "")


@dataclass(frozen=True, slots=True)
class Binary:
    op: str                              # "|" or "=" (name = value) or "." (concat)
    lhs: Expr
    rhs: Expr

    def __str__(self) -> str:
        return f"{self.lhs} {self.op} {self.rhs}"


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(str(i) for i in self.items) + "]"


@dataclass(frozen=True, slots=True)
class Struct:
    """``{...}``: a sockaddr, linger, pollfd, iovec, msghdr or plain list in braces."""

    items: tuple[Expr, ...]

    def field(self, name: str) -> Expr | None:
        for item in self.items:
            if isinstance(item, Binary) and item.op == "=" and isinstance(item.lhs, Word) \
                    and item.lhs.name == name:
                return item.rhs
        return None

    def __str__(self) -> str:
        return "{" + ", ".join(str(i) for i in self.items) + "}"


@dataclass(frozen=True, slots=True)
class Call:
    """``htons(8080)``, ``inet_addr("1.2.3.4")``, ``msg_iov(1)``."""

    name: str
    args: tuple[Expr, ...]

    def __str__(self) -> str:
        return f"{self.name}(" + ", ".join(str(a) for a in self.args) + ")"


Expr = Ellipsis_ | Int | Word | Str | Binary | ListExpr | Struct | Call
ELLIPSIS = Ellipsis_()


@dataclass(frozen=True, slots=True)
class SyscallSpec:
    """``[...END] name(args) = result [ERRNO (strerror)] [(note)]``."""

    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end_usecs: int | None = None         # blocking call: "...END"

    @property
    def blocking(self) -> bool:
        return self.end_usecs is not None

    def __str__(self) -> str:
        text = f"{self.name}(" + ", ".join(str(a) for a in self.args) + f") = {self.result}"
        if self.errno:
            text += f" {self.errno}"
        if self.note:
            text += f" ({self.note})"
        return text


@dataclass(frozen=True, slots=True)
class Command:
    """A backquoted shell command."""

    text: str


@dataclass(frozen=True, slots=True)
class Code:
    """``%{ python }%``: run with tcp_info of the socket under test."""

    text: str


@dataclass(frozen=True, slots=True)
class Unparsed:
    """An event this parser could not read; running the script SKIPs at it."""

    reason: str


Action = PacketSpec | SyscallSpec | Command | Code | Unparsed


@dataclass(frozen=True, slots=True)
class Event:
    line: int
    time: EventTime
    action: Action
    text: str = ""                       # the source line, for reports


@dataclass(frozen=True, slots=True)
class ScriptOption:
    """``--name=value`` at the top of a script (value None for a bare flag)."""

    name: str
    value: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Script:
    path: str
    options: tuple[ScriptOption, ...]
    events: tuple[Event, ...]
    init_command: Command | None = None
    cleanup_command: Command | None = None
    skip: str | None = None              # "// drill:<target> skip: why" for this target
    skip_line: int = 0
    notes: tuple[str, ...] = field(default=())

    def option(self, name: str) -> str | None:
        found = None
        for opt in self.options:
            if opt.name == name:
                found = opt.value if opt.value is not None else ""
        return found
