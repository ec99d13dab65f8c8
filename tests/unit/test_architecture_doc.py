"""docs/architecture.md states the core API exactly: every ``stack.``/``listener.``/
``conn.`` method line of its "Core API" block matches the code's signature, and every
public method of those classes is in the block, so the document cannot drift."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tcpstack.core.connection import Connection
from tcpstack.core.stack import Listener, StackCore

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
CLASSES = {"stack": StackCore, "listener": Listener, "conn": Connection}
LINE = re.compile(r"^(stack|listener|conn)\.(\w+)\((.*)\)(?: -> (.+))?$")


def _core_api_block() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Core API", 1)[1]
    block = section.split("```python", 1)[1].split("```", 1)[0]
    return block.splitlines()


def _documented() -> dict[tuple[str, str], tuple[str, str | None]]:
    found = {}
    for line in _core_api_block():
        m = LINE.match(line.split("#", 1)[0].strip())   # no signature holds a #
        if m:
            found[m.group(1), m.group(2)] = (m.group(3), m.group(4))
    return found


def _actual(cls: type, name: str) -> tuple[str, str | None]:
    sig = inspect.signature(getattr(cls, name))
    params = []
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        text = p.name
        if p.annotation is not inspect.Parameter.empty:
            text += f": {p.annotation}"
        if p.default is not inspect.Parameter.empty:
            text += f" = {p.default!r}"
        params.append(text)
    ret = sig.return_annotation
    return ", ".join(params), None if ret is inspect.Signature.empty else str(ret)


def test_the_block_documents_methods() -> None:
    assert len(_documented()) >= 30


@pytest.mark.parametrize("key", sorted(_documented()), ids=lambda k: ".".join(k))
def test_each_documented_signature_is_the_code_s(key: tuple[str, str]) -> None:
    prefix, name = key
    assert _documented()[key] == _actual(CLASSES[prefix], name)


@pytest.mark.parametrize("prefix", sorted(CLASSES))
def test_every_public_method_is_documented(prefix: str) -> None:
    cls = CLASSES[prefix]
    public = {n for n, v in vars(cls).items()
              if not n.startswith("_") and callable(v) and not isinstance(v, type)}
    documented = {name for p, name in _documented() if p == prefix}
    assert public - documented == set()
