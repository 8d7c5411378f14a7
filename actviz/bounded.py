"""A store bounded in entries and in bytes that computes each key once: a plain data structure for
any layer of the package (a probe's views in ``core``, what a server's visitors share in ``serve``).

Both classes are thread-safe and never hold their lock while a value is computed, so different
keys are computed side by side and the same key once, the other callers waiting for it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class OncePerKey:
    """A lock per key, so one computation runs per key while different keys run side by side."""

    def __init__(self):
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    def acquire(self, key: Hashable) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        lock.acquire()
        return lock

    def release(self, key: Hashable, lock: threading.Lock) -> None:
        lock.release()
        with self._guard:
            _, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class BoundedStore:
    """A least-recently-used store bounded in entries and in bytes, computing each key once.

    ``size(value)`` tells a value's bytes (default: 0, so only entries count).
    A value larger than ``max_bytes`` on its own is returned but not kept.
    """

    def __init__(self, *, max_entries: int, max_bytes: int | None = None, size: Callable[[Any], int] | None = None):
        self.max_entries = int(max_entries)
        self.max_bytes = max_bytes
        self._size = size or (lambda value: 0)
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._guard = threading.Lock()
        self._once = OncePerKey()

    def peek(self, key: Hashable) -> Any:
        """The stored value, or None; counts as a use."""
        with self._guard:
            entry = self._values.get(key)
            if entry is None:
                return None
            self._values.move_to_end(key)
            return entry[0]

    def __contains__(self, key: Hashable) -> bool:
        with self._guard:
            return key in self._values

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value for ``key``, computed once by ``compute()`` if it is not stored."""
        value = self.peek(key)
        if value is not None:
            return value
        lock = self._once.acquire(key)
        try:
            value = self.peek(key)
            if value is None:
                value = compute()
                self.put(key, value)
            return value
        finally:
            self._once.release(key, lock)

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key``, letting the least recently used go beyond the bounds."""
        size = int(self._size(value))
        with self._guard:
            self._values.pop(key, None)
            if self.max_bytes is not None and size > self.max_bytes:
                return
            self._values[key] = (value, size)
            while len(self._values) > self.max_entries or (
                self.max_bytes is not None and sum(s for _, s in self._values.values()) > self.max_bytes
            ):
                self._values.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        with self._guard:
            self._values.pop(key, None)

    def __len__(self) -> int:
        with self._guard:
            return len(self._values)

    @property
    def nbytes(self) -> int:
        with self._guard:
            return sum(size for _, size in self._values.values())
