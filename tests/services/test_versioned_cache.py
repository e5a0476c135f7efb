"""The cache behind the batch detail and the list's batch forms (services/versioned.py)."""

from __future__ import annotations

from batch_dashboard.services.versioned import VersionedCache


def test_a_value_is_served_only_at_the_version_it_was_made_from() -> None:
    cache: VersionedCache[str, bytes] = VersionedCache(budget=100, weigh=len)
    cache.put("batch_a", 3, b"three")
    assert cache.get("batch_a", 3) == b"three"
    assert cache.get("batch_a", 4) is None  # the batch changed since
    cache.put("batch_a", 4, b"four")
    assert cache.get("batch_a", 3) is None
    assert cache.get("batch_a", 4) == b"four" and cache.weight == 4


def test_the_least_recently_used_go_first_when_the_budget_is_spent() -> None:
    cache: VersionedCache[str, bytes] = VersionedCache(budget=20, weigh=len)
    for name in ("a", "b", "c", "d"):
        cache.put(name, 1, b"x" * 5)
    assert cache.get("a", 1) is not None  # a is now the most recently used
    cache.put("e", 1, b"x" * 5)  # 25 > 20: b goes
    assert cache.get("b", 1) is None
    assert all(cache.get(name, 1) is not None for name in ("a", "c", "d", "e"))
    assert cache.weight == 20


def test_a_value_too_big_for_a_quarter_of_the_budget_is_not_kept() -> None:
    cache: VersionedCache[str, bytes] = VersionedCache(budget=20, weigh=len)
    cache.put("small", 1, b"x")
    cache.put("huge", 1, b"x" * 6)
    assert cache.get("huge", 1) is None and cache.get("small", 1) == b"x"


def test_counted_by_entries_without_a_weigh_function() -> None:
    cache: VersionedCache[int, dict] = VersionedCache(budget=8)
    for key in range(10):
        cache.put(key, 1, {"id": key})
    assert len(cache.entries) == 8 and cache.get(0, 1) is None and cache.get(9, 1) == {"id": 9}
