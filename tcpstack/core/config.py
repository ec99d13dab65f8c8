"""Tunables of a stack (``StackConfig``) and of one connection (``ConnectionOptions``).

Defaults follow Linux where RFCs leave a choice; every field says where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpstack.core.congestion import DEFAULT_MIN_SSTHRESH_SEGMENTS, check_min_ssthresh


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """Per-connection options (the socket options of a kernel stack)."""

    nodelay: bool = False                 # disable Nagle (RFC 896, RFC 1122 4.2.3.4)
    # RFC 1122 4.2.3.6: off by default. (idle, interval, count) in seconds;
    # Linux's values when enabled are (7200, 75, 9).
    keepalive: tuple[float, float, int] | None = None
    mss: int | None = None                # advertised MSS; None = MTU - 40 (RFC 9293 §3.7.1)
    # Caps, not allocations (an idle connection holds no buffer memory). Linux
    # autotunes up to tcp_wmem/tcp_rmem max, 4 MB / 6 MB; 4 MiB here. With
    # 256 KiB a bulk transfer was window-limited (offloads off: 37-42 -> 61-74 MB/s).
    send_buffer: int = 4 * 1024 * 1024
    recv_buffer: int = 4 * 1024 * 1024
    cc: str = "cubic"                     # congestion control: "cubic", "reno" or "bbr"
    # Least ssthresh after a loss, in segments: RFC 5681 §3.1 says 2, tcpstack
    # defaults to 4 (see DEFAULT_MIN_SSTHRESH_SEGMENTS in core/congestion.py).
    min_ssthresh: int = DEFAULT_MIN_SSTHRESH_SEGMENTS
    sack: bool = True                     # RFC 2018 SACK-permitted
    timestamps: bool = True               # RFC 7323 timestamps (RTTM + PAWS)
    window_scale: bool = True             # RFC 7323 window scaling

    def __post_init__(self) -> None:
        check_min_ssthresh(self.min_ssthresh)


LINUX_KEEPALIVE = (7200.0, 75.0, 9)
MTU_PROBING = ("off", "blackhole", "always")   # Linux tcp_mtu_probing 0, 1, 2


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Per-stack settings. ``isn_secret`` is the only source of unpredictability."""

    isn_secret: bytes = b"tcpstack-default-secret!"
    msl: float = 30.0                     # RFC 9293 §3.4.2; TIME-WAIT lasts 2*MSL (Linux: 60 s)
    min_rto: float = 0.2                  # RFC 6298 §2.4 says 1 s; Linux uses 200 ms
    max_rto: float = 120.0                # RFC 6298 §2.5 (>= 60 s); Linux TCP_RTO_MAX
    initial_rto: float = 1.0              # RFC 6298 §2.1
    mtu: int = 1500
    tso_max: int = 0                      # >0: emit super-segments up to this many bytes
    syn_retries: int = 6                  # Linux tcp_syn_retries
    synack_retries: int = 5               # Linux tcp_synack_retries
    retries2: int = 15                    # Linux tcp_retries2
    fin_wait_2_timeout: float = 60.0      # Linux tcp_fin_timeout
    # RFC 5961 §7: challenge ACKs per second, stack-wide, randomised between half
    # and one and a half times this (Linux's CVE-2016-5696 fix) ...
    challenge_ack_limit: int = 1000
    # ... and per connection, at most one ACK per this interval for challenge ACKs
    # and for ACKs answering unacceptable segments without data (Linux
    # tcp_invalid_ratelimit, 500 ms).
    invalid_ack_interval: float = 0.5
    # RSTs for segments to closed ports, per second, stack-wide (FreeBSD's
    # icmplim, which covers them, is 200; Linux has no such limit).
    rst_limit: int = 1000
    ephemeral_ports: tuple[int, int] = (32768, 60999)  # Linux ip_local_port_range
    # RFC 1337: ignore RST in TIME-WAIT (TIME-WAIT assassination hazard).
    # Linux's default (tcp_rfc1337=0) honours the RST like RFC 9293 §3.10.7.4.
    rfc1337: bool = True
    delayed_ack: float = 0.04             # Linux's minimum delack; RFC 1122 4.2.3.2: <= 0.5 s
    max_ooo_segments: int = 256           # bound on distinct out-of-order ranges held
    # Leave out a pure ACK that a newer pure ACK of the same connection in the
    # same output batch supersedes (core/context.py StackContext.emit).
    coalesce_acks: bool = True
    # Receive-buffer autotuning (Linux tcp_rcv_space_adjust): a connection starts
    # with this much (Linux tcp_rmem[1], 128 KiB) and grows toward its
    # ConnectionOptions.recv_buffer as the application keeps up.
    rcvbuf_initial: int = 131072
    # Stack-wide limits, each counted when it bites: connections of any state;
    # TIME-WAIT entries (Linux tcp_max_tw_buckets: past it a connection closes
    # without TIME-WAIT); bytes held for the application across all connections
    # (received in order and out of order: Linux tcp_mem pressure -- windows stop
    # opening and out-of-order data is dropped first).
    max_connections: int = 262144
    max_time_wait: int = 262144
    rcv_mem_limit: int = 512 * 1024 * 1024
    # RFC 4987 §3.6: answer SYNs with cookies when a listener's SYN queue is
    # full (its backlog, as Linux), keeping no state (Linux tcp_syncookies=1).
    syncookies: bool = True
    # RFC 1191 path MTU discovery: a reported MTU below this is raised to it
    # (Linux ip_rt_min_pmtu, 552), and a learned path MTU is forgotten after
    # this many seconds so a grown path is used again (Linux ip_rt_mtu_expires).
    min_pmtu: int = 552
    pmtu_expires: float = 600.0
    # RFC 4821 / RFC 8899 packetization-layer path MTU discovery, as Linux
    # tcp_mtu_probing: "off" (0), "blackhole" (1: after repeated timeouts drop
    # to base_mss and probe upward) or "always" (2: start at base_mss and probe
    # upward). base_mss is Linux tcp_base_mss.
    mtu_probing: str = "blackhole"
    base_mss: int = 1024

    def __post_init__(self) -> None:
        if not 0 < self.delayed_ack <= 0.2:
            raise ValueError("delayed_ack must be in (0, 0.2] seconds (RFC 1122 4.2.3.2)")
        if self.mtu < 68:                 # RFC 791 / RFC 9293 §3.7.1: every IPv4 link takes 68
            raise ValueError(f"mtu {self.mtu} is too small for TCP/IPv4")
        if self.min_pmtu < 68:           # RFC 791: every IPv4 link takes 68
            raise ValueError(f"min_pmtu {self.min_pmtu} is below 68")
        if self.mtu_probing not in MTU_PROBING:
            raise ValueError(f"mtu_probing {self.mtu_probing!r} is not one of "
                             f"{', '.join(MTU_PROBING)}")
        if self.base_mss < 48:            # Linux tcp_min_snd_mss
            raise ValueError(f"base_mss {self.base_mss} is below 48")
        if self.pmtu_expires <= 0:
            raise ValueError("pmtu_expires must be positive")
        lo, hi = self.ephemeral_ports
        if not 0 < lo <= hi <= 65535:
            raise ValueError(f"bad ephemeral port range {self.ephemeral_ports}")
