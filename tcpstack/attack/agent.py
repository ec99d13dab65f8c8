"""The attacker: one process in the attacker's namespace per workload run.

::

    python -m tcpstack.attack.agent flood    --dst A --port P --count N [--rate R]
                                             --go FIFO --go-after K --seed S
    python -m tcpstack.attack.agent hol      --dst A --port P --target-pid PID --window BYTES
    python -m tcpstack.attack.agent adjacent --dst A --port P --target-pid PID --counts 1,2,3
    python -m tcpstack.attack.agent bomb     --dst A --port P --target-pid PID --count N
    python -m tcpstack.attack.agent storm    --dst A --port P --oow N --rsts N --blind N

Every command is bounded by ``--deadline`` seconds and ends with one JSON
object on the last stdout line; a failure is one line on stderr and exit 1.
``flood`` prints ``ready`` once its frames are built and starts on a line
``start`` on stdin, so that the orchestrator measures the flood alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import select
import sys
import time
from typing import Any

from tcpstack.attack import topology as topo
from tcpstack.attack.cpu import Meter
from tcpstack.attack.frames import Burst, LinkCounter, open_tap, spoofed_syn_frames
from tcpstack.attack.peer import OUR_MSS, Peer, PeerError, payload_at
from tcpstack.wire.tcp import ACK, RST, SYN

MASK = 0xFFFFFFFF
START_WAIT = 60.0
SEGMENT = 40                     # ooo-adjacent: bytes per segment


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.sock = open_tap()
        self.deadline = time.monotonic() + args.deadline
        self._peers = 0
        self.link = LinkCounter(args.router_ns, args.target_link) if args.router_ns else None

    def peer(self) -> Peer:
        """A new crafted connection, handshake done."""
        self._peers += 1
        p = Peer(self.sock, f"{topo.PEER_ADDR_BASE}{1 + self._peers % 250}",
                 self.rng.randrange(20000, 60000), self.args.dst, self.args.port,
                 self.rng.getrandbits(32), self.link)
        p.connect(timeout=min(5.0, max(0.5, self.deadline - time.monotonic())))
        return p

    def link_stats(self) -> dict[str, int]:
        """The router's link to the target (what it could not queue: tx_dropped)."""
        tx, dropped = self.link.read() if self.link else (0, 0)
        return {"tx_packets": tx, "tx_dropped": dropped}

    def left(self) -> float:
        return self.deadline - time.monotonic()


# -- syn-flood / syn-trickle ---------------------------------------------------------------

def run_flood(args: argparse.Namespace) -> dict[str, Any]:
    sock = open_tap()
    burst = Burst(spoofed_syn_frames(args.count, args.dst, args.port, args.seed))
    go = os.open(args.go, os.O_WRONLY)
    print("ready", flush=True)
    ready, _, _ = select.select([sys.stdin], [], [], START_WAIT)
    if not ready or sys.stdin.readline().strip() != "start":
        raise PeerError("no start signal")
    fd = sock.fileno()
    go_after = min(args.go_after, args.count)
    signalled = False

    def signal_go() -> None:
        nonlocal signalled
        if not signalled:
            os.write(go, b"go\n")
            signalled = True

    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    deadline = t0 + args.deadline
    if args.rate <= 0:
        burst.send(fd, 0, go_after)
        if go_after < args.count:
            signal_go()
        burst.send(fd, go_after, args.count - go_after)
    else:
        tick = 0.01
        per_tick = max(1, round(args.rate * tick))
        sent = 0
        next_tick = t0
        while sent < args.count and time.monotonic() < deadline:
            n = min(per_tick, args.count - sent)
            if sent < go_after < sent + n:
                n = go_after - sent
            burst.send(fd, sent, n)
            sent += n
            if sent >= go_after and sent < args.count:
                signal_go()
            next_tick += tick
            pause = next_tick - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    t1, cpu1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    signal_go()
    os.close(go)
    return {"sent": args.count - burst.failed, "refused": burst.failed, "seconds": t1 - t0,
            "sys": cpu1.ru_stime - cpu0.ru_stime, "user": cpu1.ru_utime - cpu0.ru_utime}


# -- hol-loss, ooo-adjacent, ooo-bomb: data behind holes ------------------------------------

WARM_CHUNK = 1 << 20
WARM_LIMIT = 16 << 20


def warm_up(agent: Agent, p: Peer, need: int) -> dict[str, Any]:
    """Send in-order data until the target's window is at least ``need`` bytes
    (a receiver that tunes its buffer to what the application reads opens its
    window only then), or stops growing, or ``WARM_LIMIT`` bytes went; each
    round waits until the application has read it all (the window is back).
    Where our next byte goes afterwards is ``p.snd_nxt_off``."""
    start = off = p.snd_nxt_off
    widest = -1

    def open_enough() -> bool:
        return p.right_off - p.ack_off >= need

    while off == start or (not open_enough() and p.right_off - p.ack_off > widest
                           and off - start < WARM_LIMIT and agent.left() > 0):
        widest = p.right_off - p.ack_off
        chunk = max(WARM_CHUNK, min(need, WARM_LIMIT))
        frames, ends = p.data_frames(off, off + chunk, OUR_MSS)
        off += chunk
        p.snd_nxt_off = off
        if not p.deliver(Burst(frames), ends, off, agent.deadline):
            raise PeerError(f"the target did not take {chunk} bytes in order "
                            f"(acknowledged up to {p.ack_off - start})")
        p.settle(open_enough, quiet=0.2, deadline=agent.deadline)
    return {"bytes": off - start, "window": p.right_off - p.ack_off}


def consumed(agent: Agent, p: Peer, free: int) -> None:
    """Wait until the application has read what was delivered: the window is as
    open as before the data (``free`` bytes; a target that sends no window update
    for it goes quiet instead), so that the CPU measured includes the reading."""
    p.settle(lambda: p.right_off - p.ack_off >= free, quiet=0.3, deadline=agent.deadline)


def run_hol(args: argparse.Namespace) -> dict[str, Any]:
    agent = Agent(args)
    window = args.window
    meter = Meter(args.target_pid)
    p = agent.peer()
    warm = warm_up(agent, p, window)
    # One window in order.
    base = p.snd_nxt_off
    free = p.right_off - p.ack_off
    frames, ends = p.data_frames(base, base + window, OUR_MSS)
    burst = Burst(frames)
    p.snd_nxt_off = base + window
    meter.restart()
    t0 = time.monotonic()
    in_order_ok = p.deliver(burst, ends, base + window, agent.deadline)
    t_ack = p.last_rx
    consumed(agent, p, free)
    in_order = {"ok": in_order_ok, "seconds": t_ack - t0, "cpu": meter.elapsed()}
    # The next window with its first segment held back.
    base = p.snd_nxt_off
    free = p.right_off - p.ack_off
    frames, ends = p.data_frames(base, base + window, OUR_MSS)
    full, behind = Burst(frames), Burst(frames[1:])
    behind_ends = ends[1:]
    fill = frames[0]
    goal = base + window
    p.snd_nxt_off = goal
    meter.restart()
    t0 = time.monotonic()
    sent = p.pump(behind, behind_ends, deadline=agent.deadline)
    offered = behind_ends[sent - 1] - ends[0] if sent else 0
    p.settle(lambda: p.edge_off >= goal, quiet=0.1, deadline=agent.deadline)
    sacked = p.edge_off - base
    t_fill = time.monotonic()
    p.send(fill)
    p.settle(lambda: p.ack_off > base, quiet=1.0, deadline=agent.deadline)
    first_ack, t_first = p.ack_off - base, p.last_rx
    hole_ok = p.deliver(full, ends, goal, agent.deadline)
    t_ack = p.last_rx
    consumed(agent, p, free)
    behind_hole = {"ok": hole_ok, "offered": offered, "sacked_edge": sacked,
                   "first_ack": first_ack, "fill_to_first_ack": t_first - t_fill,
                   "fill_to_full_ack": t_ack - t_fill if hole_ok else None,
                   "seconds": t_ack - t0, "cpu": meter.elapsed()}
    p.reset()
    return {"window": window, "warm_up": warm, "in_order": in_order, "behind_hole": behind_hole}


def run_adjacent(args: argparse.Namespace) -> dict[str, Any]:
    agent = Agent(args)
    meter = Meter(args.target_pid)
    results = []
    counts = [int(c) for c in args.counts.split(",")]
    for index, count in enumerate(counts):
        deadline = time.monotonic() + agent.left() / (len(counts) - index)
        p = agent.peer()
        span = 1 + SEGMENT * count
        warm = warm_up(agent, p, span)
        base = p.snd_nxt_off
        free = p.right_off - p.ack_off
        goal = base + span
        frames, ends = p.data_frames(base + 1, goal, SEGMENT)
        behind = Burst(frames)
        fill = p.segment(base, payload_at(base, 1))
        mss_frames, mss_ends = p.data_frames(base, goal, OUR_MSS)
        resend = Burst(mss_frames)
        p.snd_nxt_off = goal
        packets0 = p.packets
        meter.restart()
        t0 = time.monotonic()
        sent = p.pump(behind, ends, deadline=deadline)
        p.settle(lambda p=p, goal=goal: p.edge_off >= goal, quiet=0.1, deadline=deadline)
        replies = p.packets - packets0
        t_fill = time.monotonic()
        p.send(fill)
        p.settle(lambda p=p, base=base: p.ack_off > base, quiet=1.0, deadline=deadline)
        first_ack, t_first = p.ack_off - base, p.last_rx
        ok = p.deliver(resend, mss_ends, goal, deadline)
        t_ack = p.last_rx
        consumed(agent, p, free)
        cpu = meter.elapsed()
        results.append({"count": count, "sent": sent, "ok": ok, "first_ack": first_ack,
                        "fill_to_first_ack": t_first - t_fill,
                        "fill_to_full_ack": t_ack - t_fill if ok else None,
                        "seconds": time.monotonic() - t0, "cpu": cpu, "replies": replies,
                        "warm_up": warm})
        p.reset()
    return {"segment": SEGMENT, "runs": results}


def run_bomb(args: argparse.Namespace) -> dict[str, Any]:
    agent = Agent(args)
    meter = Meter(args.target_pid)
    p = agent.peer()
    count = args.count
    span = 2 * count
    warm = warm_up(agent, p, span)
    base = p.snd_nxt_off
    goal = base + span
    frames = [p.segment(base + 2 * k + 1, payload_at(base + 2 * k + 1, 1))
              for k in range(count)]
    bomb = Burst(frames)
    mss_frames, mss_ends = p.data_frames(base, goal, OUR_MSS)
    fillup = Burst(mss_frames)
    p.snd_nxt_off = goal
    packets0, pure0 = p.packets, p.pure_acks
    link0 = agent.link_stats()
    meter.restart()
    # As fast as the target takes them in: the kernel at once, tcpstack as fast
    # as it reads its TUN (never more than 2,048 waiting there).
    t0 = time.monotonic()
    sent = p.pump(bomb, None, deadline=agent.deadline, stall=0.01)
    t_sent = time.monotonic()
    p.settle(lambda: p.edge_off >= goal, quiet=1.0, deadline=agent.deadline)
    replies, pure = p.packets - packets0, p.pure_acks - pure0
    t_end = max(t_sent, p.last_rx) if replies else t_sent
    cpu = meter.elapsed()
    link1 = agent.link_stats()
    dropped = link1["tx_dropped"] - link0["tx_dropped"]
    bomb_rsts = p.rsts
    delivered = p.deliver(fillup, mss_ends, goal, agent.deadline)
    closed = p.close(agent.deadline) if delivered else False
    return {"count": count, "sent": sent - bomb.failed, "dropped_before_target": dropped,
            "taken_in": sent - bomb.failed - dropped, "seconds": t_end - t0,
            "send_seconds": t_sent - t0,
            "replies": replies, "pure_acks": pure, "rsts_during": bomb_rsts,
            "delivered_after": delivered, "closed": closed, "rsts": p.rsts,
            "intact": delivered and closed and p.rsts == 0, "cpu": cpu, "warm_up": warm}


# -- invalid-storm --------------------------------------------------------------------------

def _phase(p: Peer, burst: Burst, agent: Agent, paced_over: float = 0.0) -> dict[str, Any]:
    """Send ``burst``; count what the target answered (until 0.3 s of quiet)."""
    packets0, pure0, rsts0 = p.packets, p.pure_acks, p.rsts
    t0 = time.monotonic()
    if paced_over > 0:
        slices = 100
        per = -(-burst.count // slices)
        for k in range(slices):
            burst.send(p.fd, k * per, max(0, min(per, burst.count - k * per)))
            until = t0 + (k + 1) * paced_over / slices
            while (now := time.monotonic()) < until:
                p.poll(until - now)
    else:
        p.pump(burst, None, deadline=agent.deadline)
    seconds = time.monotonic() - t0
    p.settle(quiet=0.3, deadline=agent.deadline)
    return {"sent": burst.count, "seconds": seconds, "answers": p.packets - packets0,
            "pure_acks": p.pure_acks - pure0, "rsts": p.rsts - rsts0}


def run_storm(args: argparse.Namespace) -> dict[str, Any]:
    agent = Agent(args)
    p = agent.peer()
    echo_bytes = 1000
    checks = [p.echo(echo_bytes, agent.deadline)]
    # 1. Pure ACKs far outside the window (1 GiB ahead of what the target expects).
    far = p.seq_of(p.snd_nxt_off) + (1 << 30)
    oow = Burst([p.segment(0, seq=far + i, flags=ACK) for i in range(args.oow)])
    out_of_window = _phase(p, oow, agent)
    checks.append(p.echo(echo_bytes, agent.deadline))
    # 2. RSTs inside the window but not at RCV.NXT, spread over one second.
    window = max(2, min(p.window, 1 << 30))
    base = p.snd_nxt_off
    rsts = Burst([p.segment(0, seq=p.seq_of(base + 1 + agent.rng.randrange(window - 1)),
                            flags=RST) for _ in range(args.rsts)])
    in_window_rst = _phase(p, rsts, agent, paced_over=1.0)
    checks.append(p.echo(echo_bytes, agent.deadline))
    # 3. Blind RSTs and SYNs: sequence numbers spread evenly over the whole space
    #    (an off-path attacker's sweep), RST and SYN alternating.
    step = (1 << 32) // max(1, args.blind)
    r0, s0 = agent.rng.getrandbits(32), agent.rng.getrandbits(32)
    rcv_nxt = p.seq_of(p.snd_nxt_off)
    window = p.window
    blind_frames, hits = [], 0
    for k in range(args.blind):
        for start, flags in ((r0, RST), (s0, SYN)):
            seq = (start + k * step) & MASK
            hits += (seq - rcv_nxt) & MASK < window
            blind_frames.append(p.segment(0, seq=seq, ack=0, flags=flags))
    blind = _phase(p, Burst(blind_frames), agent)
    blind["in_window"] = hits
    checks.append(p.echo(echo_bytes, agent.deadline))
    closed = p.close(agent.deadline)
    intact = all(checks) and closed and p.rsts == 0
    return {"out_of_window_acks": out_of_window, "in_window_rsts": in_window_rst,
            "blind": blind, "echo_checks": checks, "closed": closed, "rsts": p.rsts,
            "echoed": len(p.received), "intact": intact}


COMMANDS = {"flood": run_flood, "hol": run_hol, "adjacent": run_adjacent, "bomb": run_bomb,
            "storm": run_storm}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpstack.attack.agent")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--dst", default=topo.TARGET_ADDR)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--target-pid", type=int, default=0)
    parser.add_argument("--router-ns", help="namespace of the router (for its link's drops)")
    parser.add_argument("--target-link", default=topo.TUN_NAME)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--go", metavar="FIFO")
    parser.add_argument("--go-after", type=int, default=0)
    parser.add_argument("--window", type=int, default=4 << 20)
    parser.add_argument("--counts", default="10000")
    parser.add_argument("--oow", type=int, default=10000)
    parser.add_argument("--rsts", type=int, default=3000)
    parser.add_argument("--blind", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except (PeerError, OSError) as exc:
        print(f"agent {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
