"""Forged ICMP from scapy against a live connection (RFC 5927 §4.1): a
fragmentation-needed quoting a sequence number outside SND.UNA..SND.NXT
changes nothing; one inside lowers the segment size at once.

The kernel's ACKs to tcpstack are held back by nftables on the TUN while the
ICMP is forged, so data is in flight (an idle connection has no window to
guess); then they flow again and every byte must arrive.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading

import pytest

import tcpstack
from tcpstack.core.events import EventKind, TraceEvent

from .conftest import KERNEL_ADDR, STACK_ADDR, Kernel, run_async

pytestmark = pytest.mark.root

PORT = 5010
TABLE = "tcps_hold_acks"


def nft(kernel: Kernel, *args: str, rules: str | None = None) -> None:
    result = kernel.run(["nft", *args], input=rules, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def frag_needed(local_port: int, seq: int, mtu: int) -> bytes:
    from scapy.layers.inet import ICMP, IP, TCP

    quoted = IP(src=STACK_ADDR, dst=KERNEL_ADDR) / TCP(sport=local_port, dport=PORT, seq=seq,
                                                       flags="A")
    return bytes(IP(src=KERNEL_ADDR, dst=STACK_ADDR) / ICMP(type=3, code=4, nexthopmtu=mtu)
                 / bytes(quoted))


def test_forged_frag_needed_out_of_window_ignored_in_window_obeyed(netns_name: str,
                                                                   kernel: Kernel) -> None:
    if not shutil.which("nft"):
        pytest.skip("capability missing: nft (nftables) is not installed")
    payload = os.urandom(300_000)
    events: list[TraceEvent] = []
    received: dict = {}

    async def body() -> dict:
        async with tcpstack.Stack(netns=netns_name, tracer=events.append) as stack:
            server = kernel.listen(PORT)

            def sink() -> None:
                conn, _ = server.accept()
                with conn:
                    conn.settimeout(30)
                    digest, total = hashlib.sha256(), 0
                    while data := conn.recv(1 << 16):
                        digest.update(data)
                        total += len(data)
                    received.update(sha=digest.hexdigest(), size=total)

            thread = threading.Thread(target=sink, daemon=True)
            thread.start()
            _reader, writer = await tcpstack.open_connection(KERNEL_ADDR, PORT)
            nft(kernel, "-f", "-", rules=f"""table netdev {TABLE} {{
  chain to_stack {{
    type filter hook egress device "tcps0" priority 0; policy accept;
    tcp sport {PORT} drop
  }}
}}
""")
            writer.write(payload)
            await asyncio.sleep(0.05)
            info = writer.get_extra_info("tcpstack")
            local_port = info["local"][1]
            una, nxt, mss = info["snd_una"], info["snd_max"], info["mss"]
            assert nxt != una and mss == 1448               # data in flight, unACKed
            raw = kernel.raw_socket()
            for seq in (una - 70_000, nxt, nxt + 1_000_000):  # outside SND.UNA..SND.NXT
                raw.sendto(frag_needed(local_port, seq % 2**32, 1000), (STACK_ADDR, 0))
            await asyncio.sleep(0.1)
            assert writer.get_extra_info("tcpstack")["mss"] == 1448
            assert stack.counters["icmp_out_of_window"] == 3
            mark = len(events)
            raw.sendto(frag_needed(local_port, una + 1, 1000), (STACK_ADDR, 0))
            await asyncio.sleep(0.1)
            after = events[mark:]
            assert writer.get_extra_info("tcpstack")["mss"] == 1000 - 52
            nft(kernel, "delete", "table", "netdev", TABLE)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            await asyncio.to_thread(thread.join, 30)
            return {"after": after, "counters": dict(stack.counters), "una": una}

    got = run_async(body())
    assert received == {"sha": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    after = got["after"]
    kinds = [e.kind for e in after]
    assert kinds[:3] == [EventKind.ICMP, EventKind.PMTU, EventKind.SEGMENT_OUT]
    assert after[1].reason.startswith("MSS 1448 -> 948, path MTU 1500 -> 1000")
    resent = after[2].segment
    # At once, from SND.UNA, in pieces of the new size (a TSO super-segment is
    # whole multiples of the MSS).
    assert resent.seq == got["una"] and len(resent.payload) % 948 == 0
    assert got["counters"]["pmtu_retransmits"] == 1
