"""A seeded, time-aware fault model for links: loss, duplication, reordering,
corruption, delay with jitter and a rate limit.

The kernel here has no netem, so this is how tcpstack meets a bad network,
in the simulator and on a real TUN alike. The model is pure: it never reads a
clock (time comes in as ``now``) and its only randomness is the
``random.Random(seed)`` it owns, so a seed replays the same faults.

``FaultInjector.process(packet, now)`` returns the deliveries of one packet
as ``(due_time, bytes)`` pairs: an empty list when the packet is lost, two
entries when it is duplicated. Per packet, in this order:

1. **rate** -- tail drop when ``limit`` packets are already queued for
   serialisation (counted as ``overflowed``);
2. **loss** -- dropped with probability ``loss``;
3. **corrupt** -- one random bit flipped inside the TCP header or payload,
   so the receiver's TCP checksum catches it (any single-bit error changes
   the one's complement sum);
4. **rate** -- the packet leaves the link after those queued before it:
   ``departure = max(now, link_busy_until) + len / rate``;
5. **delay/jitter** -- ``delay + uniform(-jitter, +jitter)`` (never below
   zero); non-reordered packets keep their order (jitter alone never
   reorders, unlike netem);
6. **reorder** -- with probability ``reorder`` the packet is held back an
   extra ``reorder_delay`` (default ``max(delay, 1 ms)``), so the packets
   sent after it overtake it;
7. **dup** -- with probability ``dup`` a second copy arrives right after the
   first.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from tcpstack.errors import UsageError
from tcpstack.link.base import Link

# Default queue length in packets for the rate limiter (netem's default limit).
DEFAULT_LIMIT = 1000
# The extra hold of a reordered packet when no delay is configured.
MIN_REORDER_DELAY = 0.001

_PROBABILITY_KEYS = ("loss", "dup", "reorder", "corrupt")
_DURATION_KEYS = ("delay", "jitter", "reorder_delay")
_ALIASES = {"duplicate": "dup", "drop": "loss", "corruption": "corrupt"}

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
# tc(8) rate units: "bit" units are bits per second, "bps" units bytes per second.
_RATE_UNITS = {
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
    "bps": 1.0, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([a-z%]*)\s*$", re.I)

SPEC_HELP = ("loss=2%,dup=1%,reorder=3%,corrupt=0.5%,delay=20ms,jitter=5ms,"
             "rate=10mbit,limit=1000,reorder_delay=10ms,seed=7")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """What a faulty link does. Probabilities are fractions 0..1, times seconds.

    ``rate`` is in bytes per second (``None``: unlimited); ``limit`` is the
    rate limiter's queue length in packets; ``reorder_delay`` ``None`` means
    ``max(delay, 1 ms)``; ``seed`` ``None`` means a fresh random seed (the
    injector records the one it drew, so a run can still be replayed).
    """

    loss: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    rate: float | None = None
    limit: int = DEFAULT_LIMIT
    reorder_delay: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for key in _PROBABILITY_KEYS:
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {key}={value!r}: a probability must be within 0..1")
        for key in _DURATION_KEYS:
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ValueError(f"fault {key}={value!r}: a time cannot be negative")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"fault rate={self.rate!r}: must be positive")
        if self.limit < 1:
            raise ValueError(f"fault limit={self.limit!r}: must be at least 1 packet")

    @property
    def is_null(self) -> bool:
        """True when this spec changes nothing (a wrapper would be pure overhead)."""
        return (self.loss == self.dup == self.reorder == self.corrupt == 0.0
                and self.delay == self.jitter == 0.0 and self.rate is None)

    @property
    def effective_reorder_delay(self) -> float:
        if self.reorder_delay is not None:
            return self.reorder_delay
        return max(self.delay, MIN_REORDER_DELAY)

    def with_seed(self, seed: int | None) -> FaultSpec:
        """The same faults with another seed (e.g. one per direction)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["seed"] = seed
        return FaultSpec(**values)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse ``loss=2%,dup=1%,delay=20ms,rate=10mbit,seed=7`` style text.

        Probabilities take ``%`` or a plain fraction (``0.02``); times need a
        unit (``us``, ``ms``, ``s``); rates need a tc(8) unit (``bit``,
        ``kbit``, ``mbit``, ``gbit``, or bytes per second ``bps``, ``kbps``,
        ``mbps``, ``gbps``). Raises ``UsageError`` with one line on bad input.
        """
        if not text or not text.strip():
            raise UsageError(f"empty fault spec; expected e.g. {SPEC_HELP}")
        values: dict[str, object] = {}
        for item in text.split(","):
            item = item.strip()
            if not item:
                raise UsageError(f"fault spec {text!r}: empty item (stray comma?)")
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            key = _ALIASES.get(key, key)
            raw = raw.strip()
            if not sep or not raw:
                raise UsageError(f"fault spec item {item!r}: expected key=value, e.g. loss=2%")
            if key in values:
                raise UsageError(f"fault spec {text!r}: {key} given twice")
            values[key] = _parse_value(key, raw)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def __str__(self) -> str:
        """The spec in ``parse()`` syntax (only the non-default items)."""
        parts = []
        for key in _PROBABILITY_KEYS:
            value = getattr(self, key)
            if value:
                parts.append(f"{key}={value * 100:.12g}%")
        for key in _DURATION_KEYS:
            value = getattr(self, key)
            if value:
                parts.append(f"{key}={value * 1000:.12g}ms")
        if self.rate is not None:
            parts.append(f"rate={_format_rate(self.rate)}")
        if self.limit != DEFAULT_LIMIT:
            parts.append(f"limit={self.limit}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts) or "none"


def _format_rate(rate: float) -> str:
    bits = rate * 8
    for unit, scale in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bits >= scale and (bits / scale) == round(bits / scale, 6):
            return f"{bits / scale:.12g}{unit}"
    return f"{bits:.12g}bit"


def _parse_value(key: str, raw: str) -> object:
    match = _NUMBER_UNIT.match(raw)
    if key == "seed" or key == "limit":
        try:
            return int(raw, 0)
        except ValueError:
            raise UsageError(f"fault {key}={raw!r}: expected a whole number") from None
    if key not in _PROBABILITY_KEYS and key not in _DURATION_KEYS and key != "rate":
        known = ", ".join((*_PROBABILITY_KEYS, *_DURATION_KEYS, "rate", "limit", "seed"))
        raise UsageError(f"unknown fault {key!r}; known: {known}")
    if match is None:
        raise UsageError(f"fault {key}={raw!r}: not a number with an optional unit")
    number, unit = float(match.group(1)), match.group(2).lower()
    if key in _PROBABILITY_KEYS:
        if unit == "%":
            if number > 100:
                raise UsageError(f"fault {key}={raw}: a percentage cannot exceed 100%")
            return number / 100.0
        if unit:
            raise UsageError(f"fault {key}={raw!r}: use a percentage (2%) or a fraction (0.02)")
        if number > 1:
            raise UsageError(f"fault {key}={raw}: a fraction must be within 0..1 "
                             f"(write {raw}% for a percentage)")
        return number
    if key in _DURATION_KEYS:
        if unit not in _DURATION_UNITS:
            raise UsageError(f"fault {key}={raw!r}: needs a time unit (us, ms or s), "
                             f"e.g. {key}=20ms")
        return number * _DURATION_UNITS[unit]
    if unit not in _RATE_UNITS:
        raise UsageError(f"fault rate={raw!r}: needs a rate unit (kbit, mbit, gbit, bit, "
                         f"or bytes/s: bps, kbps, mbps, gbps), e.g. rate=10mbit")
    if number <= 0:
        raise UsageError(f"fault rate={raw}: must be positive")
    return number * _RATE_UNITS[unit]


@dataclass(slots=True)
class FaultCounters:
    """How many packets each fault hit (a duplicated packet counts once in ``packets``)."""

    packets: int = 0
    delivered: int = 0
    dropped: int = 0
    overflowed: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    delayed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class FaultInjector:
    """Applies a ``FaultSpec`` to a stream of packets; one per link direction."""

    spec: FaultSpec
    seed: int = field(init=False)
    counters: FaultCounters = field(init=False, default_factory=FaultCounters)
    _rng: random.Random = field(init=False, repr=False)
    _busy_until: float = field(init=False, default=float("-inf"), repr=False)
    _last_due: float = field(init=False, default=float("-inf"), repr=False)
    _queue: collections.deque[float] = field(init=False, repr=False,
                                             default_factory=collections.deque)

    def __post_init__(self) -> None:
        seed = self.spec.seed
        if seed is None:
            seed = random.SystemRandom().getrandbits(32)
        self.seed = seed
        self._rng = random.Random(seed)

    def process(self, packet: bytes, now: float) -> list[tuple[float, bytes]]:
        """The deliveries of ``packet`` sent at ``now``: ``(due_time, bytes)`` pairs."""
        dues, bit = self.decide(len(packet), now, ip_header_length(packet))
        if bit >= 0:
            mutable = bytearray(packet)
            mutable[bit >> 3] ^= 0x80 >> (bit & 7)
            packet = bytes(mutable)
        return [(due, packet) for due in dues]

    def decide(self, length: int, now: float, start: int = 0) -> tuple[list[float], int]:
        """The fate of a packet of ``length`` bytes sent at ``now``, without its
        bytes: the times its copies arrive (none: lost; two: duplicated) and
        the bit to flip, or -1. The flipped bit lies at or after byte
        ``start`` (where the IP header ends). ``process`` is this applied to
        a packet; an offloading runtime asks it for each wire-sized piece of a
        super-segment it never cuts into packets (``runtime.wirefaults``)."""
        spec = self.spec
        rng = self._rng
        counters = self.counters
        counters.packets += 1
        if spec.rate is not None:
            queue = self._queue
            while queue and queue[0] <= now:
                queue.popleft()
            if len(queue) >= spec.limit:
                counters.overflowed += 1
                return [], -1
        if spec.loss and rng.random() < spec.loss:
            counters.dropped += 1
            return [], -1
        bit = -1
        if spec.corrupt and rng.random() < spec.corrupt:
            if length:
                if start >= length:
                    start = 0
                bit = rng.randrange(start * 8, length * 8)
            counters.corrupted += 1
        departure = now
        if spec.rate is not None:
            departure = max(now, self._busy_until) + length / spec.rate
            self._busy_until = departure
            self._queue.append(departure)
        due = departure + spec.delay
        if spec.jitter:
            due = max(departure, due + rng.uniform(-spec.jitter, spec.jitter))
        if spec.reorder and rng.random() < spec.reorder:
            # Held back; it does not push the in-order stream behind it.
            due += spec.effective_reorder_delay
            counters.reordered += 1
        else:
            due = max(due, self._last_due)
            self._last_due = due
        if due > now:
            counters.delayed += 1
        dues = [due]
        if spec.dup and rng.random() < spec.dup:
            dues.append(due)
            counters.duplicated += 1
        counters.delivered += len(dues)
        return dues, bit


def ip_header_length(packet: bytes | memoryview) -> int:
    """Where a packet's IP header ends: after the IPv4 header's IHL, or the
    40-byte IPv6 header (tcpstack sends no extension headers); 0 otherwise."""
    if not packet:
        return 0
    version = packet[0] >> 4
    return (packet[0] & 0x0F) * 4 if version == 4 else 40 if version == 6 else 0


class FaultyLink:
    """A link adapter that applies faults to the packets of an inner link.

    ``spec`` applies to packets sent (egress), ``ingress`` to packets
    received; ``None`` leaves that direction untouched. ``clock`` is the
    runtime's clock (e.g. ``loop.time``). Delayed packets wait inside the
    adapter: the runtime calls ``poll(now)`` once ``now >= next_deadline()``
    and then drains ``recv()`` (``TimedLink`` in ``tcpstack.link.base``).
    """

    def __init__(self, inner: Link, spec: FaultSpec | None, clock: Callable[[], float],
                 ingress: FaultSpec | None = None) -> None:
        self.inner = inner
        self.clock = clock
        self.egress = FaultInjector(spec) if spec is not None and not spec.is_null else None
        self.ingress = (FaultInjector(ingress)
                        if ingress is not None and not ingress.is_null else None)
        self._out: list[tuple[float, int, bytes]] = []
        self._in: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()
        # The latest time handed to poll(): a timer may fire a hair before the
        # deadline by the clock, and what fell due by then must still come out.
        self._polled = float("-inf")
        # Called as observer(direction, packet, now, deliveries) for every
        # packet that meets an injector ("out": sent, "in": received); the
        # deliveries are what ``FaultInjector.process`` made of it (empty: lost).
        self.observer: Callable[[str, bytes, float, list[tuple[float, bytes]]], None] | None = None

    def _now(self) -> float:
        return max(self.clock(), self._polled)

    @classmethod
    def both_ways(cls, inner: Link, spec: FaultSpec, clock: Callable[[], float]) -> FaultyLink:
        """The same faults in both directions, with independent random streams."""
        ingress_seed = None if spec.seed is None else spec.seed + 1
        return cls(inner, spec, clock, ingress=spec.with_seed(ingress_seed))

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @property
    def tso(self) -> bool:
        return self.inner.tso

    def fileno(self) -> int:
        return self.inner.fileno()

    def send(self, packet: bytes) -> None:
        if self.egress is None:
            self.inner.send(packet)
            return
        now = self._now()
        self.poll(now)  # what fell due first goes first
        deliveries = self.egress.process(packet, now)
        if self.observer is not None:
            self.observer("out", packet, now, deliveries)
        for due, data in deliveries:
            if due <= now:
                self.inner.send(data)
            else:
                heapq.heappush(self._out, (due, next(self._order), data))

    def recv(self) -> bytes | None:
        if self.ingress is None:
            return self.inner.recv()
        now = self._now()
        while (packet := self.inner.recv()) is not None:
            deliveries = self.ingress.process(packet, now)
            if self.observer is not None:
                self.observer("in", bytes(packet), now, deliveries)
            for due, data in deliveries:
                heapq.heappush(self._in, (due, next(self._order), data))
        if self._in and self._in[0][0] <= now:
            return heapq.heappop(self._in)[2]
        return None

    def next_deadline(self) -> float | None:
        """When the next held packet is due (sent by ``poll`` or returned by ``recv``)."""
        heads = [queue[0][0] for queue in (self._out, self._in) if queue]
        return min(heads) if heads else None

    def poll(self, now: float) -> None:
        """Send the held egress packets due by ``now``; ``recv()`` then returns the
        ingress packets due by ``now`` even if the clock reads slightly earlier."""
        self._polled = max(self._polled, now)
        out = self._out
        while out and out[0][0] <= now:
            self.inner.send(heapq.heappop(out)[2])

    def held(self) -> int:
        """Packets waiting inside the adapter, both directions."""
        return len(self._out) + len(self._in)
