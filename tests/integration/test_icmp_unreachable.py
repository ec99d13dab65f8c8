"""Errors that end a connect quickly (RFC 1122 §4.2.3.9, RFC 5461): the router
next to tcpstack rejects the SYN with nftables ``reject with icmp type ...``;
``tcpstack connect`` must say which error in one line and exit 1 at once,
not after 127 s of SYN retries."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tcpstack.link.path import PEER_ADDR, NarrowPath

from .conftest import _ROOT, _env

pytestmark = pytest.mark.root

PORT = 5002


@pytest.fixture(scope="module")
def path() -> Iterator[NarrowPath]:
    with NarrowPath() as p:
        yield p


def reject(path: NarrowPath, icmp_type: str) -> None:
    path.nft(f"""table ip tcps_reject
delete table ip tcps_reject
table ip tcps_reject {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip daddr {PEER_ADDR} tcp dport {PORT} reject with icmp type {icmp_type}
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
