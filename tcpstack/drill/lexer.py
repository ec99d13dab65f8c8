"""packetdrill's tokens.

The rules follow packetdrill's flex scanner (``lexer.l``): longest match, and
on a tie the earlier rule wins (so ``1460`` is a number, not a word). Comments
(``//`` to the end of the line, ``/* ... */``) are dropped; ``%{ ... }%`` code
and backquoted shell commands are single tokens; ``S.`` is the word ``S``
followed by the character ``.``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tcpstack.drill.model import DrillSyntaxError

# Kinds of token.
ELLIPSIS = "ELLIPSIS"      # ...
OPTION = "OPTION"          # --name (value: name)
FLOAT = "FLOAT"            # [-]digits.digits (value: float text)
INTEGER = "INTEGER"        # [-]digits (value: int)
HEX = "HEX"                # 0x.. (value: int)
WORD = "WORD"              # [A-Za-z0-9_]+
STRING = "STRING"          # "..." (value: the text inside)
BACKQUOTED = "BACKQUOTED"  # `...` (value: the command)
CODE = "CODE"              # %{ ... }% (value: the code, stripped of spaces/tabs)
IPV4_ADDR = "IPV4_ADDR"
IPV6_ADDR = "IPV6_ADDR"
CHAR = "CHAR"              # any other single character (value: the character)
EOF = "EOF"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: object
    line: int
    text: str          # the source text of the token

    def is_char(self, ch: str) -> bool:
        return self.kind == CHAR and self.value == ch

    def __str__(self) -> str:
        return self.text if self.kind != EOF else "end of file"


# Longest match among these; order breaks ties (as in lexer.l).
_SEG = r"[0-9a-fA-F]{1,4}"
_V4 = r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"
_IPV6 = "|".join([
    rf"::ffff:(?:0{{1,4}}:)?{_V4}",
    rf"(?:{_SEG}:){{1,4}}:{_V4}",
    rf"(?:{_SEG}:){{7}}{_SEG}",
    rf"(?:{_SEG}:){{1,7}}:(?:{_SEG}(?::{_SEG}){{0,6}})?",
    rf"::(?:{_SEG}(?::{_SEG}){{0,6}})?",
])
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (ELLIPSIS, re.compile(r"\.\.\.")),
    (OPTION, re.compile(r"--[a-zA-Z0-9_]+")),
    (FLOAT, re.compile(r"-?[0-9]*\.[0-9]+")),
    (INTEGER, re.compile(r"-?[0-9]+")),
    (HEX, re.compile(r"0x[0-9a-fA-F]+")),
    (WORD, re.compile(r"[a-zA-Z0-9_]+")),
    (STRING, re.compile(r'"(?:\\.|[^"\\])*"', re.S)),
    (BACKQUOTED, re.compile(r"`(?:\\.|[^`\\])*`", re.S)),
    (IPV4_ADDR, re.compile(_V4)),
    (IPV6_ADDR, re.compile(_IPV6)),
]
_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_CPP_COMMENT = re.compile(r"//[^\n]*")
_C_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CODE = re.compile(r"%\{.*?\}%", re.S)


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an EOF token. Raises DrillSyntaxError."""
    tokens: list[Token] = []
    pos = 0
    line = 1
    n = len(text)
    while pos < n:
        m = _SPACE.match(text, pos)
        if m:
            line += m.group().count("\n")
            pos = m.end()
            continue
        if text.startswith("//", pos):
            pos = _CPP_COMMENT.match(text, pos).end()  # type: ignore[union-attr]
            continue
        if text.startswith("/*", pos):
            m = _C_COMMENT.match(text, pos)
            if not m:
                raise DrillSyntaxError(line, "unterminated /* comment")
            line += m.group().count("\n")
            pos = m.end()
            continue
        if text.startswith("%{", pos):
            m = _CODE.match(text, pos)
            if not m:
                raise DrillSyntaxError(line, "unterminated %{ code }% block")
            raw = m.group()
            tokens.append(Token(CODE, raw[2:-2].strip(" \t"), line, raw))
            line += raw.count("\n")
            pos = m.end()
            continue
        best: tuple[int, str, str] | None = None
        for kind, rx in _RULES:
            m = rx.match(text, pos)
            if m and (best is None or m.end() - pos > len(best[2])):
                best = (m.end(), kind, m.group())
        if best is None:
            ch = text[pos]
            if ch in "\"`":
                raise DrillSyntaxError(line, f"unterminated {ch} quote")
            tokens.append(Token(CHAR, ch, line, ch))
            pos += 1
            continue
        end, kind, raw = best
        value: object
        if kind == INTEGER:
            value = int(raw)
        elif kind == HEX:
            value = int(raw, 16)
        elif kind in (STRING, BACKQUOTED):
            value = raw[1:-1]
        elif kind == OPTION:
            value = raw[2:]
        else:
            value = raw
        tokens.append(Token(kind, value, line, raw))
        line += raw.count("\n")
        pos = end
    tokens.append(Token(EOF, None, line, ""))
    return tokens
