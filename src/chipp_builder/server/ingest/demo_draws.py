"""Seeded draws the demo builds its rows from: ids that a seed repeats, and weighted choices."""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID


def new_uuid(rng: random.Random) -> UUID:
    """A version-4 UUID drawn from the seeded generator, so a seed repeats the ids too."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def time_uuid(rng: random.Random, when: datetime) -> UUID:
    """A version-7 UUID (RFC 9562: Unix milliseconds, then random bits) for a row made at `when`.

    Rows are generated in time order, so time-ordered ids append to the primary-key and session indexes
    instead of landing on random pages, so a large demo stays fast once the database outgrows the cache.
    """
    millis = int(when.timestamp() * 1000)
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


def weighted(rng: random.Random, pairs: tuple[tuple[Any, ...], ...]) -> Any:
    """One of `pairs`: tuples whose last item is their weight."""
    return rng.choices(pairs, weights=[p[-1] for p in pairs])[0]
