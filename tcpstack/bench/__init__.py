"""The benchmark: tcpstack against the kernel, side by side, in private namespaces.

``tcpstack bench`` and ``tools/bench`` run :func:`tcpstack.bench.main.main`;
see docs/performance.md for the method and measured figures.
"""
