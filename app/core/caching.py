"""The one in-process cache helper: a bounded, thread-safe map, least recently used out first.

Every per-process cache of the registry is one of these, so none grows with the registry's
history: immutable versions and their prepared headers, full log tiles, facts the verifier has
established, c2pa contexts per set of anchors, each document kind's served schemas. What it holds
must be safe to keep (it never changes once true) and cheap to recompute when it is evicted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most ``size`` entries; a hit makes an entry the most recently used."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError("a cache holds at least one entry")
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value kept for ``key``, or ``default``."""
        with self._lock:
            try:
                self._items.move_to_end(key)
            except KeyError:
                return default
            return self._items[key]

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` for ``key`` (evicting the least recently used beyond the bound)."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
