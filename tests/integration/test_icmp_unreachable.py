"""Errors that end a connect quickly (RFC 1122 §4.2.3.9, RFC 5461): the router
next to tcpstack rejects the SYN with nftables ``reject with icmp type ...``;
``tcpstack connect`` must say which error in one line and exit 1 at once,
not after 127 s of SYN retries."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import tcpstack
from tcpstack.core.state import State
from tcpstack.link.path import PEER_ADDR, STACK_ADDR, TUN_ADDR, TUN_NAME, NarrowPath

from .conftest import _ROOT, _env, run_async

pytestmark = pytest.mark.root

PORT = 5002


@pytest.fixture(scope="module")
def path() -> Iterator[NarrowPath]:
    with NarrowPath() as p:
        yield p


def reject(path: NarrowPath, icmp_type: str, port: int = PORT) -> None:
    path.nft(f"""table ip tcps_reject
delete table ip tcps_reject
table ip tcps_reject {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip daddr {PEER_ADDR} tcp dport {port} reject with icmp type {icmp_type}
  }}
}}
""")


@pytest.mark.parametrize(("icmp_type", "message"), [
    ("net-unreachable", "network is unreachable"),
    ("host-unreachable", "no route to host"),
    ("prot-unreachable", "protocol unreachable"),
    ("port-unreachable", "connection refused"),
    ("admin-prohibited", "administratively prohibited"),
])
def test_connect_fails_at_once_with_the_matching_message(path: NarrowPath, icmp_type: str,
                                                         message: str) -> None:
    reject(path, icmp_type)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tcpstack", "connect", "--netns",
                             path.router, PEER_ADDR, str(PORT)], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, cwd=_ROOT, env=_env())
    took = time.monotonic() - started
    print(f"\n{icmp_type}: exit {result.returncode} after {took:.2f} s (process start "
          f"included): {result.stderr.strip()}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    kind = icmp_type.replace("prot-", "protocol-")      # nft's name -> tcpstack's
    assert lines[0] == (f"tcpstack: connect to {PEER_ADDR}:{PORT} failed: {message} "
                        f"(ICMP {kind} from 10.7.0.1)")


def test_once_connected_unreachable_is_a_soft_error(path: NarrowPath) -> None:
    """RFC 5927 §5.2 (and Linux): a port unreachable for an ESTABLISHED
    connection's data does not reset it; when the path heals the data flows."""
    port = PORT + 1
    server = path.in_peer(socket.create_server, (PEER_ADDR, port))
    server.settimeout(30)
    got: dict = {}

    def sink() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(30)
                chunks = []
                while data := conn.recv(65536):
                    chunks.append(data)
                got["data"] = b"".join(chunks)

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    payload = bytes(range(256)) * 400

    async def body() -> dict:
        async with tcpstack.Stack(netns=path.router, tun=TUN_NAME, addr=STACK_ADDR,
                                  tun_addr=f"{TUN_ADDR}/24", create_netns=False) as stack:
            _reader, writer = await tcpstack.open_connection(PEER_ADDR, port)
            reject(path, "port-unreachable", port)
            writer.write(payload)
            await asyncio.sleep(1.0)                    # several retransmissions rejected
            conn = writer.get_extra_info("connection")
            during = (conn.state, conn.error, stack.counters.get("icmp_soft_errors", 0))
            path.nft("delete table ip tcps_reject\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            return {"during": during}

    result = run_async(body(), timeout=60)
    thread.join(30)
    state, error, soft = result["during"]
    assert state is State.ESTABLISHED and error is None
    assert soft >= 2
    assert got["data"] == payload
