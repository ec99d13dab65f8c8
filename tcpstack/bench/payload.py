"""The bulk payload: a seeded 1 MiB block repeated, and its expected SHA-256.

Sender and receiver never share memory: the sender regenerates the stream
from the seed, the receiver hashes what arrived, and the benchmark compares
that digest with ``expected_sha256(total, seed)`` computed on its own.
"""

from __future__ import annotations

import hashlib
import random

BLOCK_SIZE = 1 << 20


def block(seed: int) -> bytes:
    """The 1 MiB block the stream repeats (pseudo-random, so nothing compresses it)."""
    return random.Random(seed).randbytes(BLOCK_SIZE)


def chunks(total: int, seed: int) -> list[bytes]:
    """The stream of ``total`` bytes as whole blocks plus one shorter tail.

    The same ``bytes`` object repeats, so this costs 1 MiB however long the stream.
    """
    data = block(seed)
    full, tail = divmod(total, BLOCK_SIZE)
    out = [data] * full
    if tail:
        out.append(data[:tail])
    return out


def expected_sha256(total: int, seed: int) -> str:
    digest = hashlib.sha256()
    for chunk in chunks(total, seed):
        digest.update(chunk)
    return digest.hexdigest()
