"""Bytes <-> frozen dataclasses for IPv4 and TCP. No scapy on this path."""
