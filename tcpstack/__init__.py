"""tcpstack: a userspace TCP/IPv4 stack in Python over a Linux TUN device.

``Stack``, ``open_connection`` and ``start_server`` (see ``tcpstack.api``)
are imported on first use, so ``import tcpstack`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Stack", "__version__", "open_connection", "start_server"]

if TYPE_CHECKING:
    from tcpstack.api import Stack, open_connection, start_server


def __getattr__(name: str) -> Any:
    if name in ("Stack", "open_connection", "start_server"):
        from tcpstack import api

        return getattr(api, name)
    raise AttributeError(f"module 'tcpstack' has no attribute {name!r}")
