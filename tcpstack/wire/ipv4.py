"""IPv4 header as a frozen dataclass (RFC 791). Options are skipped on parse."""

from __future__ import annotations

from dataclasses import dataclass

PROTO_TCP = 6


@dataclass(frozen=True, slots=True)
class Ipv4Header:
    """Addresses are dotted-quad strings; ``header_length`` in bytes."""

    src: str
    dst: str
    protocol: int = PROTO_TCP
    ttl: int = 64
    ident: int = 0
    tos: int = 0
    dont_fragment: bool = True
    total_length: int = 0
    header_length: int = 20
