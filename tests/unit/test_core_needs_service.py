"""``StackCore.needs_service()``: whether ``take_output()`` or
``take_changed()`` has something -- what the runtime asks after a read
before it schedules a service pass."""

from __future__ import annotations

from tcpstack.core.config import ConnectionOptions, StackConfig
from tcpstack.core.stack import StackCore
from tcpstack.core.state import State

A, B, PORT = "10.9.0.1", "10.9.0.2", 5001


def pump(a: StackCore, b: StackCore, now: float) -> None:
    moved = True
    while moved:
        moved = False
        for src_stack, dst_stack in ((a, b), (b, a)):
            for src, dst, seg in src_stack.take_output():
                dst_stack.receive(src, dst, seg, now)
                moved = True


def test_needs_service_tells_what_take_output_and_take_changed_would_return() -> None:
    client = StackCore(local_addr=A, config=StackConfig(isn_secret=b"c" * 16))
    server = StackCore(local_addr=B, config=StackConfig(isn_secret=b"s" * 16))
    listener = server.listen(PORT)
    conn = client.connect(B, PORT, 1.0, options=ConnectionOptions(nodelay=True,
                                                                   recv_buffer=4096))
    assert client.needs_service()                # the SYN waits
    pump(client, server, 1.0)
    client.take_changed()
    server.take_changed()
    peer = listener.accept()
    assert peer is not None and conn.state is State.ESTABLISHED
    assert not client.needs_service() and not server.needs_service()

    # A small read leaves the window where it was: nothing to write or tell.
    peer.send(b"x", 2.0)
    pump(server, client, 2.0)
    assert client.needs_service()                # the connection is readable
    client.take_changed()
    assert conn.recv(10, 2.0) == b"x"
    assert not client.needs_service()

    # Filling the small receive buffer and reading it all opens the window
    # enough for an update: a segment waits.
    peer.send(b"y" * 4096, 3.0)
    for _ in range(10):
        pump(server, client, 3.0)
    client.take_changed()
    assert conn.recv_available() > 0
    while conn.recv_available():
        conn.recv(65536, 3.0)
    assert client.needs_service()
    assert client.take_output()
    assert not client.needs_service()
