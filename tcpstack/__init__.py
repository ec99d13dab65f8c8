"""tcpstack: a userspace TCP/IPv4 stack in Python over a Linux TUN device."""

__version__ = "0.1.0"
