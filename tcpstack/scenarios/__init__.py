"""The scenario library: the situations learners study, each drawn from real packets.

Each ``Scenario`` has a name, a title, a one-paragraph explanation for a
learner (shown above its diagram) and the ways it can run: against the Linux
kernel (``tcpstack/scenarios/kernel.py``, tcpstack on one side and a kernel
socket on the other) and/or on the simulator
(``tcpstack/scenarios/simulated.py``, two tcpstack stacks on a virtual
clock, for what needs two controllable ends or precise timing).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpstack.errors import UsageError


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    explanation: str
    kernel: bool           # runnable against the kernel (tcpstack demo NAME)
    sim: bool = True       # runnable on the simulator (tcpstack demo NAME --sim)
    absolute: bool = False  # draw raw sequence numbers (when several ISNs matter)

    @property
    def where(self) -> str:
        return "kernel, sim" if self.kernel and self.sim else "kernel" if self.kernel else "sim"


_ALL = [
    Scenario(
        "demo", "tcpstack and the Linux kernel: open, talk, close",
        "A Linux kernel socket connects to tcpstack, each side sends a line, and the kernel "
        "closes first. Read the arrows from top to bottom: the three-way handshake (SYN, "
        "SYN-ACK, ACK) agrees on both initial sequence numbers, the data segments carry "
        "sequence numbers counted in bytes, and each direction is closed by its own FIN and "
        "ACK. tcpstack's states come from its own trace; the kernel's (marked ~) are worked "
        "out from the segments it sent and received.",
        kernel=True, sim=False),
    Scenario(
        "handshake", "The three-way handshake",
        "The client picks a random initial sequence number (ISN) and sends a SYN: it enters "
        "SYN-SENT. The server, in LISTEN, answers with a SYN-ACK that carries its own random "
        "ISN and acknowledges the client's ISN + 1 (a SYN occupies one sequence number): it "
        "enters SYN-RECEIVED. The client's ACK of the server's ISN + 1 completes the "
        "handshake; both ends are ESTABLISHED. Three segments are needed because each side "
        "must learn that the other received its ISN. The SYNs also carry options: the "
        "maximum segment size, window scaling, SACK and timestamps.",
        kernel=True),
    Scenario(
        "data", "Data both ways",
        "Sequence numbers count bytes. A segment with len=14 starting at seq=1 is "
        "acknowledged by ack=15: the number of the next byte the receiver expects. Each side "
        "numbers its own bytes from its own ISN, so seq and ack are shown relative to the "
        "ISNs (0 is the SYN). The window (win) tells the sender how many more bytes the "
        "receiver can buffer; a receiver may delay its ACK a little, hoping to send it "
        "together with data.",
        kernel=True),
    Scenario(
        "active-close", "Four-way close: the active closer waits in TIME-WAIT",
        "The side that closes first sends a FIN and enters FIN-WAIT-1; the peer acknowledges "
        "it (the closer moves to FIN-WAIT-2, the peer to CLOSE-WAIT) and, when its own "
        "application closes, sends its FIN (LAST-ACK). The active closer acknowledges that "
        "FIN and stays in TIME-WAIT for 2 MSL (maximum segment lifetime) before it is "
        "CLOSED: long enough to repeat the last ACK if it was lost, and for old segments of "
        "this connection to die out before the same four addresses and ports can be used "
        "again. Each direction needs its own FIN and ACK: four segments.",
        kernel=True),
    Scenario(
        "passive-close", "Passive close: CLOSE-WAIT and LAST-ACK",
        "Here the peer closes first. Receiving its FIN only means the peer will send no more "
        "data: this side acknowledges it at once and enters CLOSE-WAIT, where it stays until "
        "its own application closes (a program that forgets to close leaves connections in "
        "CLOSE-WAIT forever). Its FIN then moves it to LAST-ACK, and the ACK of that FIN "
        "ends the connection: the passive closer goes straight to CLOSED, without TIME-WAIT.",
        kernel=True),
    Scenario(
        "half-close", "Half-close: the CLOSE-WAIT side keeps sending",
        "TCP is full duplex and a FIN closes one direction only. The client sends its request "
        "and then a FIN (shutdown of its sending side), but it keeps reading. The server, in "
        "CLOSE-WAIT, still sends its replies, which the client in FIN-WAIT-2 acknowledges; "
        "only then does the server close its direction with its own FIN. This is why the "
        "close takes four segments where the handshake takes three: the ACK of the first FIN "
        "and the second FIN are usually separate.",
        kernel=True),
    Scenario(
        "simultaneous-open", "Simultaneous open",
        "Two ends may open the connection to each other at the same moment. Both send a SYN "
        "and enter SYN-SENT; each then receives the other's SYN while in SYN-SENT, moves to "
        "SYN-RECEIVED and answers with a SYN-ACK that repeats its own ISN. Each SYN-ACK "
        "acknowledges the other's SYN, so both reach ESTABLISHED: one connection, four "
        "segments, no listener. It needs two ends that both connect, so it runs on the "
        "simulator.",
        kernel=False),
    Scenario(
        "simultaneous-close", "Simultaneous close through CLOSING",
        "Both applications close at the same time: both send a FIN from ESTABLISHED and enter "
        "FIN-WAIT-1. Each then receives the other's FIN before the ACK of its own, which is "
        "the CLOSING state. When the ACKs arrive both go to TIME-WAIT and, 2 MSL later, to "
        "CLOSED: both ends were active closers.",
        kernel=False),
    Scenario(
        "finwait1-to-timewait", "FIN-WAIT-1 straight to TIME-WAIT",
        "Usually the ACK of a FIN and the peer's own FIN arrive as two segments. Here the "
        "peer's separate ACK is lost, so the next segment the active closer receives carries "
        "both: a FIN that also acknowledges its FIN. From FIN-WAIT-1 it goes directly to "
        "TIME-WAIT (RFC 9293 processes the ACK first, so tcpstack passes through FIN-WAIT-2 "
        "in the same instant), never lingering in FIN-WAIT-2 or CLOSING.",
        kernel=False),
    Scenario(
        "time-wait-reack", "Why TIME-WAIT lasts 2 MSL: the last ACK is lost",
        "The active closer's final ACK is lost. The passive closer, still in LAST-ACK, times "
        "out and retransmits its FIN. Because the active closer is still in TIME-WAIT it can "
        "answer with the ACK again and restarts its 2 MSL timer. Had it gone straight to "
        "CLOSED, the retransmitted FIN would have been answered with a RST and the peer "
        "would have seen an error instead of a clean close.",
        kernel=False),
    Scenario(
        "old-duplicate-syn", "An old duplicate SYN: why the handshake has a third step",
        "A SYN from an earlier incarnation of the connection, delayed in the network, reaches "
        "the server before the client's real SYN. The server cannot tell and answers with a "
        "SYN-ACK that acknowledges the old sequence number. The client, in SYN-SENT, sees an "
        "ACK for a SYN it did not send now and answers with RST; the server drops the "
        "half-open connection and returns to LISTEN. The real SYN (retransmitted here) then "
        "opens the connection normally. With a two-way handshake the server would have "
        "opened a connection nobody asked for. Sequence numbers are absolute in this "
        "diagram, since several ISNs are in play.",
        kernel=False, absolute=True),
    Scenario(
        "refused", "Connection refused: RST from a closed port",
        "Nothing listens on the port. The host answers the SYN with a RST whose "
        "acknowledgment number is the SYN's sequence number + 1, so the client can tell it "
        "answers this SYN; the client goes from SYN-SENT to CLOSED and its application sees "
        "\"connection refused\". A RST is never answered.",
        kernel=True),
    Scenario(
        "keepalive", "Keepalive probes and giving up",
        "An idle connection exchanges nothing, so an end cannot tell whether its peer still "
        "exists. With keepalive on, after the idle time (Linux: 2 hours; here a few seconds) "
        "the end sends a probe: an ACK with sequence number SND.NXT - 1, outside the peer's "
        "window, which forces the peer to answer with an ACK. An answered probe proves the "
        "peer alive. In the simulator run the peer then vanishes: the probes go unanswered "
        "and after the configured count the connection is reset and closed.",
        kernel=True),
    Scenario(
        "zero-window", "Zero window and persist probes",
        "The receiving application does not read, its buffer fills and it advertises a window "
        "of 0: the sender must stop. If the ACK that reopens the window were lost, both ends "
        "would wait forever, so the sender's persist timer sends small window probes, with "
        "exponential backoff, and each is answered with the current window. When the "
        "application reads, a window update lets the transfer resume.",
        kernel=True),
    Scenario(
        "lost-segment", "A lost segment: retransmission with RTO backoff",
        "A data segment is lost, and so are its first two retransmissions. Each time the "
        "retransmission timer (RTO) expires the sender sends the same bytes again and "
        "doubles the timeout (exponential backoff, RFC 6298): 200 ms, 400 ms, 800 ms. The "
        "fourth copy arrives and is acknowledged.",
        kernel=False),
    Scenario(
        "pmtu", "A path MTU black hole, found and worked around",
        "Every segment here has the don't-fragment bit set, and somewhere on the path a link "
        "carries at most 1200 bytes. Its router should answer each full-size segment with "
        "ICMP \"fragmentation needed\" (RFC 1191), but a firewall drops that ICMP: a black "
        "hole (RFC 2923). The full-size segments vanish without a word, and so do their "
        "retransmissions. After the third timeout in a row the sender suspects a black hole "
        "(RFC 4821, as Linux's tcp_mtu_probing=1 does) and falls back to 1024-byte "
        "segments, which get through; with more data it would then probe upward with one "
        "larger segment at a time and keep the size that is acknowledged.",
        kernel=False),
]

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UsageError(f"unknown scenario {name!r} (tcpstack demo --list shows them)") from None
