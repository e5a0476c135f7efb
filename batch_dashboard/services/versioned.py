"""A bounded in-memory cache of values that are valid while their record's version is."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class VersionedCache(Generic[K, V]):
    """Values by key, each remembered with the version of the record it was made from.

    Every write that changes a batch or its recipients bumps `Batch.version` in the same
    transaction, so a value is good exactly while the stored version still matches: nothing is
    ever invalidated by hand, and several processes can each keep their own. Bounded by the
    summed `weigh` of the values (bytes, or a count), least recently used out first; callers
    must not modify what they get.
    """

    def __init__(self, budget: int, weigh: Callable[[V], int] = lambda _value: 1) -> None:
        self.budget = budget
        self.weigh = weigh
        self.weight = 0
        self.entries: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: K, version: int) -> V | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self.entries.move_to_end(key)
            return entry[1]

    def put(self, key: K, version: int, value: V) -> None:
        weight = self.weigh(value)
        if weight > self.budget // 4:  # one huge value must not flush everything else
            return
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.weight -= self.weigh(old[1])
            self.entries[key] = (version, value)
            self.weight += weight
            while self.weight > self.budget:
                _, (_, evicted) = self.entries.popitem(last=False)
                self.weight -= self.weigh(evicted)
