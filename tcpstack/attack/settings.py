"""The sizes of every workload: the defaults, and ``--quick``'s (a smoke run)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Settings:
    flood_syns: int = 100_000
    flood_go_after: int = 2_000          # legitimate clients start after this many SYNs
    flood_clients: int = 200
    client_timeout: float = 10.0         # each legitimate client gives up after this
    trickle_syns: int = 20_000
    trickle_rate: int = 2_000            # SYNs per second
    trickle_clients: int = 5
    window: int = 4 << 20                # hol-loss: the window filled behind the hole
    adjacent_counts: tuple[int, ...] = (10_000, 50_000, 100_000)
    bomb_count: int = 50_000
    storm_oow: int = 10_000
    storm_rsts: int = 3_000
    storm_blind: int = 1_000
    deadline: float = 60.0               # bound of each crafted-peer run (per count: adjacent)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "adjacent_counts": list(self.adjacent_counts)}


DEFAULT = Settings()
QUICK = Settings(flood_syns=3_000, flood_go_after=500, flood_clients=20, client_timeout=4.0,
                 trickle_syns=600, trickle_rate=600, trickle_clients=5, window=1 << 20,
                 adjacent_counts=(500, 1_000, 2_000), bomb_count=2_000, storm_oow=500,
                 storm_rsts=300, storm_blind=100, deadline=30.0)


def with_overrides(base: Settings, **given: Any) -> Settings:
    """``base`` with every keyword that is not None."""
    return replace(base, **{k: v for k, v in given.items() if v is not None})
