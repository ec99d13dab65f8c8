"""Loss made by the kernel, not by tcpstack: nftables drops packets on the TUN.

tcpstack's own fault injector (``fault=``) is tested in the simulator and on
the link; this is the independent check. In the test's namespace an
nftables ``netdev`` table drops a random share of the packets on the TUN in
both directions: on the egress hook (kernel → tcpstack) and on the ingress
hook (tcpstack → kernel), with ``numgen random``. Both ends must recover
every byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil

import pytest

import tcpstack
from tcpstack.link import netns as ns

from .conftest import Kernel, echo_handler, kernel_echo_client, run_async

pytestmark = pytest.mark.root

TUN = "tcps0"
TABLE = "tcps_loss"
LOSS_PERCENT = 3


def nft(kernel: Kernel, *args: str, rules: str | None = None) -> str:
    result = kernel.run(["nft", *args], input=rules, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def drop_randomly_on_the_tun(kernel: Kernel, percent: int) -> None:
    """Both directions. The TUN's GSO limit goes to one segment first: Linux
    TCP hands the egress hook 64 KB GSO packets otherwise, and "3% of
    packets" would mean 3% of bursts of 40 segments."""

    def one_segment_per_packet() -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=TUN)[0], gso_max_segs=1)

    ns.run_in_netns(kernel.netns, one_segment_per_packet)
    rules = f"""table netdev {TABLE} {{
  chain to_stack {{
    type filter hook egress device "{TUN}" priority 0; policy accept;
    numgen random mod 100 < {percent} counter drop
  }}
  chain from_stack {{
    type filter hook ingress device "{TUN}" priority 0; policy accept;
    numgen random mod 100 < {percent} counter drop
  }}
}}
"""
    nft(kernel, "-f", "-", rules=rules)


def dropped_per_chain(kernel: Kernel) -> dict[str, int]:
    listing = nft(kernel, "list", "table", "netdev", TABLE)
    found = re.findall(r"chain (\w+) \{.*?counter packets (\d+)", listing, re.S)
    return {chain: int(packets) for chain, packets in found}


@pytest.fixture
def nft_available() -> None:
    if not shutil.which("nft"):
        pytest.skip("capability missing: nft (nftables) is not installed")


def test_echo_survives_kernel_made_loss_both_ways(nft_available: None, netns_name: str,
                                                  kernel: Kernel) -> None:
    payload = os.urandom(2_000_000)

    async def body() -> None:
        # Without offloads every packet on the TUN is one segment both ways.
        async with tcpstack.Stack(netns=netns_name, offload=False) as stack:
            drop_randomly_on_the_tun(kernel, LOSS_PERCENT)
            await tcpstack.start_server(echo_handler, 7)
            echoed = await asyncio.to_thread(kernel_echo_client, kernel, 7, payload, 60.0)
            assert len(echoed) == len(payload)
            assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
            dropped = dropped_per_chain(kernel)
            # ~1,400 segments each way: 3% is ~40; the bound only proves the
            # rules worked in both directions.
            assert dropped["to_stack"] > 5, dropped
            assert dropped["from_stack"] > 5, dropped
            assert stack.counters["retransmitted_segments"] > 0

    run_async(body(), timeout=120)
