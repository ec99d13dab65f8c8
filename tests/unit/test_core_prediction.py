"""Header prediction (``Connection._predicted``) is a shortcut, never a difference.

The same random scripts as the property tests (application calls, drops,
duplicates, reordering, clock jumps, hostile segments) run twice: with the
fast path and with every segment forced through the full RFC 9293
§3.10.7.4 processing. Every segment sent and the state of both connections
after every step must be identical.
"""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.connection import Connection
from tcpstack.core.stack import StackCore
from tests.unit.test_core_properties import PATTERN, ops, run_script


def _both_ways(script, options_on: bool, reno: bool, hostile: bool) -> tuple[list, list]:
    fast: list = []
    run_script(script, options_on, reno, hostile, transcript=fast)
    full: list = []
    with patch.object(Connection, "_predicted", lambda self, seg, now: False):
        run_script(script, options_on, reno, hostile, transcript=full)
    return fast, full


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=30, max_size=150), st.booleans(), st.booleans(), st.booleans())
def test_prediction_sends_and_knows_exactly_what_the_full_path_does(script, options_on, reno,
                                                                    hostile):
    fast, full = _both_ways(script, options_on, reno, hostile)
    assert len(fast) == len(full)
    for step, (a, b) in enumerate(zip(fast, full, strict=True)):
        assert a == b, f"step {step}: {a} != {b}"


def test_a_bulk_transfer_takes_the_fast_path():
    """Sending 100 KB each way: in-order data and pure ACKs are predicted."""
    script = [("send", 0, 20000), ("send", 1, 20000), ("deliver_all", 0, 0),
              ("recv", 0, 20000), ("recv", 1, 20000), ("deliver_all", 0, 0)] * 15
    counters: dict[str, int] = {}
    original = Connection._predicted

    def counting(self, seg, now):
        hit = original(self, seg, now)
        key = "data" if seg.payload else "ack"
        counters[f"{key}-{hit}"] = counters.get(f"{key}-{hit}", 0) + 1
        return hit

    with patch.object(Connection, "_predicted", counting):
        got = run_script(script, options_on=True, reno=False, hostile=False)
    assert got == (len(PATTERN), len(PATTERN))
    assert counters["data-True"] > 0.9 * (counters["data-True"] + counters.get("data-False", 0))
    assert counters["ack-True"] > 0


def test_request_response_segments_are_predicted():
    """A 1-byte request and its reply each carry data and ACK the other's:
    after the handshake every segment takes the fast path."""
    a = StackCore("10.0.0.1", StackConfig(isn_secret=b"a" * 16))
    b = StackCore("10.0.0.2", StackConfig(isn_secret=b"b" * 16))
    opts = ConnectionOptions(nodelay=True)
    listener = b.listen(80, options=opts)
    now = 0.0

    def carry() -> None:
        moved = True
        while moved:
            moved = False
            for src, dst in ((a, b), (b, a)):
                for s_addr, d_addr, seg in src.take_output():
                    dst.receive(s_addr, d_addr, seg, now)
                    moved = True

    client = a.connect("10.0.0.2", 80, now, options=opts)
    carry()
    server = listener.accept()
    for _ in range(20):
        now += 0.001
        client.send(b"q", now)
        carry()
        assert server.recv(10, now) == b"q"
        server.send(b"r", now)
        carry()
        assert client.recv(10, now) == b"r"
    assert b.counters["predicted_data"] == 20
    assert a.counters["predicted_data"] == 20
