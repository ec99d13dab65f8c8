"""Read a capture and check the life of one TCP connection in it: handshake, close, no RST.

scapy is the independent oracle here; the checks follow RFC 9293 §3.5
(three-way handshake) and §3.6 (closing a connection).
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10


@dataclasses.dataclass(frozen=True)
class Seg:
    src: tuple[str, int]
    dst: tuple[str, int]
    flags: int
    seq: int
    ack: int
    length: int


def read_tcp_segments(path: Path) -> list[Seg]:
    """Every IPv4/TCP segment in a pcap (link type raw IPv4 or Ethernet)."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    segments = []
    for packet in rdpcap(str(path)):
        ip = packet.getlayer(IP)
        if ip is None or not ip.haslayer(TCP):
            continue
        tcp = ip[TCP]
        payload = ip.len - ip.ihl * 4 - tcp.dataofs * 4
        segments.append(Seg((ip.src, tcp.sport), (ip.dst, tcp.dport), int(tcp.flags),
                            tcp.seq, tcp.ack, payload))
    return segments


def connection_segments(segments: list[Seg], client: tuple[str, int] | None,
                        server: tuple[str, int]) -> list[Seg]:
    """The segments between ``server`` and ``client`` (any client port when client[1] is 0)."""
    def side(end: tuple[str, int]) -> bool:
        if end == server:
            return True
        return client is not None and end[0] == client[0] and client[1] in (0, end[1])

    return [s for s in segments if side(s.src) and side(s.dst) and s.src != s.dst]


def check_handshake_and_close(segments: list[Seg], server: tuple[str, int]) -> dict[str, int]:
    """Assert a complete three-way handshake, a FIN from each side (each ACKed) and no RST.

    ``segments`` holds one connection to ``server``. Returns the sequence
    numbers found, for messages.
    """
    assert segments, f"no segments to or from {server} in the capture"
    first = segments[0]
    # §3.5: SYN, then SYN-ACK acknowledging ISN+1, then ACK of the server's ISN+1.
    assert first.flags & (SYN | ACK) == SYN and first.dst == server, f"first segment {first}"
    client = first.src
    client_isn = first.seq
    syn_ack = next((s for s in segments if s.src == server and s.flags & (SYN | ACK) == SYN | ACK),
                   None)
    assert syn_ack is not None, "no SYN-ACK from the server"
    assert syn_ack.ack == (client_isn + 1) % 2**32, "SYN-ACK does not acknowledge ISN+1"
    server_isn = syn_ack.seq
    third = next((s for s in segments[segments.index(syn_ack) + 1:]
                  if s.src == client and s.flags & ACK), None)
    assert third is not None and third.ack == (server_isn + 1) % 2**32, "no ACK of the SYN-ACK"
    # No resets anywhere in the connection.
    resets = [s for s in segments if s.flags & RST]
    assert not resets, f"RST seen: {resets[:3]}"
    # §3.6: each side's FIN occupies one sequence number and is acknowledged.
    for sender in (client, server):
        fins = [s for s in segments if s.src == sender and s.flags & FIN]
        assert fins, f"no FIN from {sender}"
        fin_seq = (fins[0].seq + fins[0].length + 1) % 2**32
        acked = any(s.src != sender and s.flags & ACK and s.ack == fin_seq for s in segments)
        assert acked, f"FIN from {sender} (ends at {fin_seq}) never acknowledged"
    return {"client_isn": client_isn, "server_isn": server_isn}


class Capture:
    """tcpdump on one interface inside a namespace, written to a pcap; stop() ends it by PID."""

    def __init__(self, netns: str, interface: str, path: Path, bpf: str = "tcp") -> None:
        self.path = path
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "tcpdump", "-i", interface, "--immediate-mode", "-U",
             "-n", "-s", "128",
             "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self._proc.stderr is not None
        # tcpdump says "listening on ..." once the capture is armed.
        deadline = time.monotonic() + 10
        for line in self._proc.stderr:
            if "listening on" in line or time.monotonic() > deadline:
                break

    def stop(self, quiet: float = 0.5, limit: float = 10.0) -> Path:
        """End the capture once the file has stopped growing (tcpdump has written all it saw)."""
        deadline = time.monotonic() + limit
        size = -1
        while time.monotonic() < deadline and self._proc.poll() is None:
            current = self.path.stat().st_size if self.path.exists() else 0
            if current == size:
                break
            size = current
            time.sleep(quiet)
        if self._proc.poll() is None:
            self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()
        return self.path
