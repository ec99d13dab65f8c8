"""packetdrill scripts -> ``model.Script``.

A recursive-descent reading of packetdrill's grammar (``parser.y``):

    script  := option* [`init command`] event* [`cleanup command`]
    option  := --name[=value]
    event   := time action
    time    := [+]T | * | T~T | +T~+T                (T: seconds, int or float)
    action  := packet | syscall | `command` | %{ code }%
    packet  := (<|>) [ip info] [PORT>PORT] flags seq [ack N] [win N] [urg N] [<options>]
    syscall := [...END] name(args) = result [ERRNO (strerror)] [(note)]

Anything it cannot read becomes an ``Unparsed`` event at its line, so a script
written for another packetdrill (FreeBSD's SCTP lines, gVisor's, AccECN ...)
still parses and is then SKIPped at that line with the reason, never run
half-understood.
"""

from __future__ import annotations

from tcpstack.drill import lexer
from tcpstack.drill.annotate import annotate
from tcpstack.drill.lexer import Token, tokenize
from tcpstack.drill.model import (
    ELLIPSIS,
    Binary,
    Call,
    Code,
    Command,
    DrillSyntaxError,
    Event,
    EventTime,
    Expr,
    Int,
    ListExpr,
    PacketSpec,
    Script,
    ScriptOption,
    Str,
    Struct,
    SyscallSpec,
    TcpOption,
    TimeKind,
    Unparsed,
    Word,
)

VALID_FLAGS = ".FSRPEWAU01234567"
_OPTION_LENGTHS = {"nop": 1, "eol": 1, "mss": 4, "wscale": 3, "sackOK": 2, "TS": 10}


def parse_script(text: str, path: str = "<script>", target: str = "core") -> Script:
    """Parse ``text`` as ``target`` sees it. Raises DrillSyntaxError for a script
    whose structure (options, times) cannot be read at all."""
    annotated = annotate(text, target)
    parser = _Parser(tokenize(annotated.text), annotated.text.split("\n"))
    script = parser.script(path)
    if annotated.skip is not None:
        script = Script(script.path, script.options, script.events, script.init_command,
                        script.cleanup_command, annotated.skip, annotated.skip_line,
                        script.notes)
    return script


def _usecs(tok: Token) -> int:
    if tok.kind == lexer.INTEGER:
        value = int(tok.value)  # type: ignore[call-overload]
        if value < 0:
            raise DrillSyntaxError(tok.line, "negative time")
        return value * 1_000_000
    if tok.kind == lexer.FLOAT:
        value_f = float(tok.text)
        if value_f < 0:
            raise DrillSyntaxError(tok.line, "negative time")
        return round(value_f * 1e6)
    raise DrillSyntaxError(tok.line, f"expected a time, found {tok}")


class _Parser:
    def __init__(self, tokens: list[Token], lines: list[str]) -> None:
        self.toks = tokens
        self.pos = 0
        self.lines = lines

    # -- token helpers ------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.toks[min(self.pos + ahead, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.toks[self.pos]
        if tok.kind != lexer.EOF:
            self.pos += 1
        return tok

    def at_char(self, ch: str) -> bool:
        return self.tok.is_char(ch)

    def at_word(self, *words: str) -> bool:
        return self.tok.kind == lexer.WORD and self.tok.value in words

    def expect_char(self, ch: str) -> Token:
        tok = self.next()
        if not tok.is_char(ch):
            raise DrillSyntaxError(tok.line, f"expected '{ch}', found {tok}")
        return tok

    def expect_int(self, what: str) -> int:
        tok = self.next()
        if tok.kind not in (lexer.INTEGER, lexer.HEX):
            raise DrillSyntaxError(tok.line, f"expected {what} (a number), found {tok}")
        return int(tok.value)  # type: ignore[call-overload]

    def expect_word(self, *words: str) -> Token:
        tok = self.next()
        if tok.kind != lexer.WORD or (words and tok.value not in words):
            raise DrillSyntaxError(tok.line, f"expected {' or '.join(words) or 'a word'}, "
                                             f"found {tok}")
        return tok

    # -- script ---------------------------------------------------------------
    def script(self, path: str) -> Script:
        options = self.options()
        init = None
        if self.tok.kind == lexer.BACKQUOTED:
            init = Command(str(self.next().value))
        events: list[Event] = []
        cleanup = None
        while self.tok.kind != lexer.EOF:
            if self.tok.kind == lexer.BACKQUOTED:
                tok = self.next()
                if self.tok.kind == lexer.EOF:
                    cleanup = Command(str(tok.value))
                    break
                events.append(Event(tok.line, EventTime(TimeKind.ANY), Unparsed(
                    "a command without a time may stand only first or last"),
                    self.source(tok.line)))
                continue
            if self.tok.kind == lexer.OPTION:
                tok = self.tok
                raise DrillSyntaxError(tok.line, f"option --{tok.value} after the first event")
            events.append(self.event())
        if events and events[0].time.kind is TimeKind.ABSOLUTE and events[0].time.usecs != 0:
            raise DrillSyntaxError(events[0].line, "first event should be at time 0")
        return Script(path, tuple(options), tuple(events), init, cleanup)

    def source(self, line: int) -> str:
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""

    def options(self) -> list[ScriptOption]:
        found = []
        while self.tok.kind == lexer.OPTION:
            tok = self.next()
            value = None
            if self.at_char("="):
                self.next()
                parts = []
                while self.tok.kind not in (lexer.EOF, lexer.OPTION) and self.tok.line == tok.line:
                    parts.append(self.next().text)
                value = "".join(parts)
            found.append(ScriptOption(str(tok.value), value, tok.line))
        return found

    # -- events ---------------------------------------------------------------
    def event(self) -> Event:
        start = self.pos
        line = self.tok.line
        try:
            time = self.event_time()
            line = self.toks[start].line
            action = self.action()
        except DrillSyntaxError as exc:
            self.recover(start, exc.line)
            return Event(exc.line, EventTime(TimeKind.ANY), Unparsed(exc.message),
                         self.source(exc.line))
        if isinstance(action, PacketSpec) and action.direction == "<" and \
                time.kind in (TimeKind.ANY, TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE):
            return Event(line, time, Unparsed("a time range or * may only be used with "
                                              "outbound packets"), self.source(line))
        if not isinstance(action, PacketSpec) and time.kind in (
                TimeKind.ANY, TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE):
            return Event(line, time, Unparsed("a time range or * may only be used with "
                                              "outbound packets"), self.source(line))
        return Event(line, time, action, self.source(line))

    def recover(self, start: int, error_line: int) -> None:
        """Skip to the first token of a later line that can start an event."""
        self.pos = max(self.pos, start + 1)
        while self.tok.kind != lexer.EOF:
            tok = self.tok
            prev = self.toks[self.pos - 1]
            starts_line = tok.line > prev.line and tok.line > error_line
            if starts_line and (tok.kind in (lexer.FLOAT, lexer.INTEGER, lexer.BACKQUOTED,
                                             lexer.CODE) or tok.is_char("+")
                                or tok.is_char("*")):
                return
            self.next()

    def event_time(self) -> EventTime:
        if self.at_char("*"):
            self.next()
            return EventTime(TimeKind.ANY)
        if self.at_char("+"):
            self.next()
            start = _usecs(self.next())
            if self.at_char("~"):
                self.next()
                self.expect_char("+")
                end = _usecs(self.next())
                if end < start:
                    raise DrillSyntaxError(self.tok.line, "time range is backwards")
                return EventTime(TimeKind.RELATIVE_RANGE, start, end)
            return EventTime(TimeKind.RELATIVE, start)
        start = _usecs(self.next())
        if self.at_char("~"):
            self.next()
            end = _usecs(self.next())
            if end < start:
                raise DrillSyntaxError(self.tok.line, "time range is backwards")
            return EventTime(TimeKind.ABSOLUTE_RANGE, start, end)
        return EventTime(TimeKind.ABSOLUTE, start)

    def action(self) -> PacketSpec | SyscallSpec | Command | Code:
        tok = self.tok
        if tok.is_char("<") or tok.is_char(">"):
            return self.packet()
        if tok.kind == lexer.ELLIPSIS or (tok.kind == lexer.WORD and self.peek().is_char("(")):
            return self.syscall()
        if tok.kind == lexer.BACKQUOTED:
            self.next()
            return Command(str(tok.value))
        if tok.kind == lexer.CODE:
            self.next()
            return Code(str(tok.value))
        raise DrillSyntaxError(tok.line, f"expected a packet, a system call, a `command` or "
                                         f"%{{ code }}%, found {tok}")

    # -- packets --------------------------------------------------------------
    def packet(self) -> PacketSpec:
        direction_tok = self.next()
        direction = str(direction_tok.value)
        unsupported: str | None = None
        while self.at_word("ipv4", "ipv6", "gre", "GREv0", "mpls"):
            raise DrillSyntaxError(self.tok.line, f"encapsulated packets ({self.tok.value}) "
                                                  f"are not supported")
        if self.at_char("(") or self.at_char("["):
            unsupported = self.ip_info()
        if self.tok.kind == lexer.WORD and self.tok.value in ("udp", "icmp", "sctp", "udplite",
                                                            "raw"):
            raise DrillSyntaxError(self.tok.line, f"{self.tok.value} packets are not supported "
                                                  f"(TCP only)")
        src_port = dst_port = None
        if self.tok.kind == lexer.INTEGER and self.peek().is_char(">"):
            src_port = self.expect_int("source port")
            self.expect_char(">")
            dst_port = self.expect_int("destination port")
        flags = self.flags()
        if any(c in flags for c in "01234567"):
            unsupported = unsupported or "AccECN ACE flags are not supported"
        if "A" in flags:
            unsupported = unsupported or "the AE flag (AccECN) is not supported"
        seq = self.expect_int("start sequence number")
        self.expect_char(":")
        end_seq = self.expect_int("end sequence number")
        self.expect_char("(")
        length = self.expect_int("payload length")
        self.expect_char(")")
        if not (0 <= seq <= 0xFFFFFFFF and 0 <= end_seq <= 0xFFFFFFFF):
            raise DrillSyntaxError(direction_tok.line, "TCP sequence number out of range")
        if not 0 <= length <= 0xFFFF:
            raise DrillSyntaxError(direction_tok.line, "TCP payload size out of range")
        if end_seq != seq + length:
            raise DrillSyntaxError(direction_tok.line,
                                   "inconsistent TCP sequence numbers and payload size")
        ack = window = None
        urgent = 0
        if self.at_word("ack"):
            self.next()
            ack = self.expect_int("ack number")
            if not 0 <= ack <= 0xFFFFFFFF:
                raise DrillSyntaxError(direction_tok.line, "TCP ack sequence number out of range")
        if self.at_word("win"):
            self.next()
            window = self.expect_int("window")
            if not 0 <= window <= 0xFFFF:
                raise DrillSyntaxError(direction_tok.line, "TCP window value out of range")
        if self.at_word("urg"):
            self.next()
            urgent = self.expect_int("urgent pointer")
            if direction != "<":
                unsupported = unsupported or "an outbound urgent pointer is not judged"
        options: tuple[TcpOption, ...] | None = ()
        if self.at_char("<"):
            options, why = self.tcp_options()
            unsupported = unsupported or why
        if self.at_char("{"):
            self.skip_balanced("{", "}")
            unsupported = unsupported or "packet fuzzing {...} is not supported"
        if direction == "<" and window is None:
            raise DrillSyntaxError(direction_tok.line,
                                   "window must be specified for inbound packets")
        if direction == "<" and options is None:
            raise DrillSyntaxError(direction_tok.line, "<...> for TCP options can only be "
                                                       "used with outbound packets")
        return PacketSpec(direction, flags, seq, end_seq, length, ack, window, urgent, options,
                          src_port, dst_port, unsupported)

    def ip_info(self) -> str | None:
        close = ")" if self.at_char("(") else "]"
        self.next()
        words = []
        while not self.at_char(close):
            tok = self.next()
            if tok.kind == lexer.EOF:
                raise DrillSyntaxError(tok.line, f"expected '{close}'")
            words.append(tok.text)
        self.next()
        if words == ["noecn"]:
            return None
        return f"IP header fields ({' '.join(words)}) are not supported"

    def flags(self) -> str:
        tok = self.tok
        if tok.is_char("."):
            self.next()
            if self.tok.kind == lexer.WORD and self.tok.value == "":
                pass
            return "."
        if tok.is_char("-"):
            self.next()
            return ""
        if tok.kind == lexer.FLOAT:     # AccECN: ".5"
            self.next()
            return tok.text
        if tok.kind in (lexer.WORD, lexer.INTEGER):
            self.next()
            text = tok.text
            if self.tok.kind == lexer.FLOAT and self.tok.text.startswith("."):
                text += self.next().text
            elif self.at_char("."):
                self.next()
                text += "."
            for ch in text:
                if ch not in VALID_FLAGS:
                    raise DrillSyntaxError(tok.line, f"Invalid TCP flag: '{ch}'")
            return text
        raise DrillSyntaxError(tok.line, f"expected TCP flags, found {tok}")

    def tcp_options(self) -> tuple[tuple[TcpOption, ...] | None, str | None]:
        start = self.expect_char("<")
        if self.tok.kind == lexer.ELLIPSIS:
            self.next()
            self.expect_char(">")
            return None, None
        opts: list[TcpOption] = []
        unsupported = None
        length = 0
        while True:
            tok = self.tok
            if tok.kind != lexer.WORD:
                raise DrillSyntaxError(tok.line, f"expected a TCP option, found {tok}")
            name = str(tok.value)
            self.next()
            if name in ("nop", "eol", "sackOK"):
                opts.append(TcpOption(name))
            elif name in ("mss", "wscale"):
                value = self.expect_int(f"{name} value")
                limit = 0xFFFF if name == "mss" else 0xFF
                if not 0 <= value <= limit:
                    raise DrillSyntaxError(tok.line, f"{name} value out of range")
                opts.append(TcpOption(name, (value,)))
            elif name == "TS":
                self.expect_word("val")
                val = self.expect_int("TS val")
                self.expect_word("ecr")
                ecr = self.expect_int("TS ecr")
                opts.append(TcpOption("TS", (val & 0xFFFFFFFF, ecr & 0xFFFFFFFF)))
            elif name == "sack":
                values: list[int] = []
                while self.tok.kind == lexer.INTEGER and self.peek().is_char(":"):
                    values.append(self.expect_int("SACK left edge"))
                    self.expect_char(":")
                    values.append(self.expect_int("SACK right edge"))
                if not values:
                    raise DrillSyntaxError(tok.line, "sack needs at least one block")
                opts.append(TcpOption("sack", tuple(values)))
                length += 2 + 4 * len(values)
            elif name in ("md5", "FO", "FOEXP"):
                blob = ""
                if self.tok.kind in (lexer.WORD, lexer.INTEGER) and not self.at_char(","):
                    blob = self.next().text
                opts.append(TcpOption(name, (), blob))
                length += (2 if name != "FOEXP" else 4) + len(blob) // 2
                unsupported = unsupported or f"TCP option {name} is not supported"
            else:
                unsupported = unsupported or f"TCP option {name!r} is not supported"
                depth = 0
                while not (depth == 0 and (self.at_char(",") or self.at_char(">"))):
                    if self.tok.kind == lexer.EOF:
                        raise DrillSyntaxError(start.line, "unterminated TCP option list")
                    if self.at_char("<"):
                        depth += 1
                    elif self.at_char(">"):
                        depth -= 1
                    self.next()
                opts.append(TcpOption(name))
            length += _OPTION_LENGTHS.get(name, 0)
            if self.at_char(","):
                self.next()
                continue
            self.expect_char(">")
            break
        if unsupported is None and length % 4:
            raise DrillSyntaxError(start.line, f"TCP options are not padded correctly to ensure "
                                               f"TCP header is a multiple of 4 bytes: "
                                               f"{length % 4} excess bytes")
        if length > 40:
            raise DrillSyntaxError(start.line, "TCP option list too long")
        return tuple(opts), unsupported

    def skip_balanced(self, open_: str, close: str) -> None:
        depth = 0
        while True:
            tok = self.next()
            if tok.kind == lexer.EOF:
                raise DrillSyntaxError(tok.line, f"expected '{close}'")
            if tok.is_char(open_):
                depth += 1
            elif tok.is_char(close):
                depth -= 1
                if depth == 0:
                    return

    # -- system calls -------------------------------------------------------------
    def syscall(self) -> SyscallSpec:
        end = None
        if self.tok.kind == lexer.ELLIPSIS:
            self.next()
            end = _usecs(self.next())
        name = str(self.expect_word().value)
        self.expect_char("(")
        args: list[Expr] = []
        if not self.at_char(")"):
            args = self.expr_list(")")
        self.expect_char(")")
        self.expect_char("=")
        result = self.expression(allow_call=False)
        errno = None
        note = None
        if self.tok.kind == lexer.WORD and str(self.tok.value).startswith("E") and \
                str(self.tok.value).isupper():
            errno = str(self.next().value)
        if self.at_char("("):
            note = self.note()
        return SyscallSpec(name, tuple(args), result, errno, note, end)

    def note(self) -> str:
        self.expect_char("(")
        depth = 1
        parts = []
        while True:
            tok = self.next()
            if tok.kind == lexer.EOF:
                raise DrillSyntaxError(tok.line, "unterminated (note)")
            if tok.is_char("("):
                depth += 1
            elif tok.is_char(")"):
                depth -= 1
                if depth == 0:
                    return " ".join(parts)
            parts.append(tok.text)

    def expr_list(self, close: str) -> list[Expr]:
        items = [self.expression()]
        while self.at_char(","):
            self.next()
            if self.at_char(close):
                break
            items.append(self.expression())
        return items

    def expression(self, allow_call: bool = True) -> Expr:
        lhs = self.primary(allow_call)
        while self.at_char("|"):
            self.next()
            lhs = Binary("|", lhs, self.primary(allow_call))
        return lhs

    def primary(self, allow_call: bool) -> Expr:
        tok = self.tok
        if tok.kind == lexer.ELLIPSIS:
            self.next()
            return ELLIPSIS
        if tok.kind == lexer.INTEGER:
            self.next()
            return Int(int(tok.value))  # type: ignore[call-overload]
        if tok.kind == lexer.HEX:
            self.next()
            return Int(int(tok.value), hex=True)  # type: ignore[call-overload]
        if tok.kind == lexer.STRING:
            text = ""
            while self.tok.kind == lexer.STRING:
                text += str(self.next().value)
            if self.tok.kind == lexer.ELLIPSIS:
                self.next()
                return Str(text, True)
            return Str(text)
        if tok.is_char("["):
            self.next()
            items = [] if self.at_char("]") else self.expr_list("]")
            self.expect_char("]")
            return ListExpr(tuple(items))
        if tok.is_char("{"):
            self.next()
            items = [] if self.at_char("}") else self.expr_list("}")
            self.expect_char("}")
            return Struct(tuple(items))
        if tok.kind in (lexer.WORD, lexer.FLOAT, lexer.IPV4_ADDR, lexer.IPV6_ADDR):
            self.next()
            node: Expr = Word(tok.text)
            if allow_call and self.at_char("("):
                self.next()
                args = [] if self.at_char(")") else self.expr_list(")")
                self.expect_char(")")
                node = Call(tok.text, tuple(args))
            if self.at_char("="):
                self.next()
                return Binary("=", node, self.expression())
            return node
        raise DrillSyntaxError(tok.line, f"expected an expression, found {tok}")
