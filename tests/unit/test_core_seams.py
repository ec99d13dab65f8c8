"""The seams of the core hold: Connection and StackCore use no private member of
each other, no source file outgrows a reader, and every timer is one table entry."""

from __future__ import annotations

import ast
from pathlib import Path

from tcpstack.core import timers
from tcpstack.core.connection import Connection

ROOT = Path(__file__).resolve().parents[2] / "tcpstack"
CORE = ROOT / "core"
# The parts of one connection (the TCB and its mixins, its loss recovery).
CONNECTION_MODULES = ["connection.py", "sender.py", "receiver.py", "prediction.py",
                      "recovery.py", "icmp.py"]
MAX_LINES = 900


def _private_uses(path: Path, on_names: set[str]) -> list[str]:
    """``name._private`` (and ``self.name._private``) for the given names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        attr = node.attr
        if not attr.startswith("_") or attr.startswith("__"):
            continue
        value = node.value
        name = value.id if isinstance(value, ast.Name) else (
            value.attr if isinstance(value, ast.Attribute) else None)
        if name in on_names:
            found.append(f"{path.name}:{node.lineno}: {name}.{attr}")
    return found


def test_the_stack_uses_no_private_member_of_a_connection() -> None:
    assert _private_uses(CORE / "stack.py", {"conn", "connection", "c"}) == []


def test_a_connection_uses_no_private_member_of_the_stack() -> None:
    uses = []
    for name in CONNECTION_MODULES:
        uses += _private_uses(CORE / name, {"_ctx", "ctx", "stack", "_stack", "listener"})
        source = (CORE / name).read_text()
        assert "tcpstack.core.stack" not in source, f"{name} imports the stack"
    assert uses == []


def test_no_source_file_is_over_900_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_timer_has_a_handler_and_an_index() -> None:
    assert len({t.name for t in timers.TIMERS}) == len(timers.TIMERS)
    for index, timer in enumerate(timers.TIMERS):
        assert callable(getattr(Connection, timer.handler)), timer
        constant = timer.name.upper().replace("-", "_")
        assert getattr(timers, constant) == index


class _Recorder:
    def __init__(self) -> None:
        self.pushed: list[float] = []

    def push(self, deadline: float, table: timers.TimerTable) -> None:
        self.pushed.append(deadline)


def test_a_timer_table_tells_the_queue_only_of_earlier_deadlines() -> None:
    queue = _Recorder()
    table = timers.TimerTable(queue, owner=None)            # type: ignore[arg-type]
    table.arm(timers.RETRANSMIT, 5.0)
    table.arm(timers.RETRANSMIT, 6.0)       # later: the queue re-reads it lazily
    table.arm(timers.DELAYED_ACK, 1.0)      # earlier: pushed at once
    assert queue.pushed == [5.0, 1.0]
    assert table.armed() == {"retransmit": 6.0, "delayed-ack": 1.0}
    assert table.next_deadline() == 1.0
    table.cancel_all()
    assert table.armed() == {} and table.next_deadline() is None


def test_the_queue_hands_out_due_tables_once_and_skips_stale_entries() -> None:
    queue = timers.TimerQueue()
    a = timers.TimerTable(queue, owner="a")
    b = timers.TimerTable(queue, owner="b")
    a.arm(timers.RETRANSMIT, 2.0)
    b.arm(timers.PERSIST, 3.0)
    a.arm(timers.DELAYED_ACK, 1.0)
    a.at[timers.DELAYED_ACK] = None         # cancelled: its entry goes stale
    assert queue.next_deadline() == 2.0
    assert [t.owner for t in queue.take_due(2.5)] == ["a"]
    assert queue.take_due(2.5) == []
    assert queue.next_deadline() == 3.0
