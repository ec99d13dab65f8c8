"""tools/attack: hostile loads against tcpstack and the kernel, side by side."""
