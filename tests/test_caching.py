"""The bounded cache every per-process cache is made of."""

from __future__ import annotations

import threading

import pytest

from app.core.caching import BoundedCache


def test_it_holds_at_most_its_size_and_evicts_the_least_recently_used():
    cache: BoundedCache[int, str] = BoundedCache(3)
    for key in (1, 2, 3):
        cache.put(key, str(key))
    assert cache.get(1) == "1"  # 1 is now the most recently used
    cache.put(4, "4")
    assert len(cache) == 3
    assert cache.get(2) is None and cache.get(2, "gone") == "gone"
    assert [cache.get(k) for k in (1, 3, 4)] == ["1", "3", "4"]
    cache.put(3, "three")  # replacing counts as a use, and adds nothing
    cache.put(5, "5")
    assert len(cache) == 3 and cache.get(1) is None and cache.get(3) == "three"
    cache.clear()
    assert len(cache) == 0 and not cache


def test_it_needs_room_for_one_entry():
    with pytest.raises(ValueError):
        BoundedCache(0)


def test_concurrent_use_stays_within_the_bound():
    cache: BoundedCache[tuple[int, int], int] = BoundedCache(50)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(2000):
                cache.put((worker, i), i)
                cache.get((worker, i - 1))
                cache.get((worker - 1, i))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(cache) == 50
