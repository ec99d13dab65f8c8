"""``tcpstack drill``: run Google packetdrill scripts (``.pkt``) against a TCP stack.

Modules, one concern each:

- ``lexer``    -- packetdrill's tokens (comments, ``%{ }%`` code, backticks, numbers ...)
- ``annotate`` -- per-target lines (``// drill:core ...``, trailing ``// drill:kernel``)
- ``model``    -- the parsed script: frozen dataclasses
- ``parser``   -- tokens -> ``model.Script`` (recursive descent over packetdrill's grammar)
- ``packets``  -- raw TCP/IPv4 bytes for inbound packets, outbound packets as ``WirePacket``
- ``seqmap``   -- packetdrill's relative sequence numbers and TS val mapping
- ``compare``  -- script packet vs actual packet (strict / lenient), packetdrill-style dumps
- ``symbols``  -- socket/errno/fcntl constants, tcp_info names, sysctls understood
- ``engine``   -- the interpreter: event times, tolerance, blocking calls, one target
- ``core_target`` / ``kernel_target`` -- the sans-IO core on a virtual clock / Linux in a
  private namespace behind a TUN device
- ``report``   -- PASS / FAIL / SKIP results and their text
- ``runner``   -- finding scripts, running them, the summary line

See docs/drill.md.
"""
