"""Work shared between the visitors of one server: computed once per content, held within bounds.

A dashboard serves several visitors from one process. Two kinds of store let
them share work without evicting or seeing each other's:

- ``HeldResults``: results (feature maps) kept only while some visitor holds
  them. Each visitor's session keeps a strong reference to its own current
  result; the store keeps a weak one, so two visitors on the same image share
  one forward pass, and a result is freed as soon as nobody shows it any more.
- ``BoundedStore`` (from ``actviz.bounded``, where the core uses it too): results
  worth keeping when nobody holds them (models, filter patterns, data set
  summaries), least recently used first out, bounded in entries and in bytes.

Both compute a missing value once even when several visitors ask at the same
moment (the others wait for it), and never hold their lock while computing.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Hashable

from ..bounded import BoundedStore, OncePerKey

__all__ = ["BoundedStore", "HeldResults", "array_bytes"]


class HeldResults:
    """Results kept while a visitor holds them (weakly referenced here), computed once per key,
    their bytes counted while they live.

    ``max_bytes`` bounds what all visitors hold at once: a new result whose estimated size
    (``need``) does not fit beside the ones held is refused (``BudgetError``) before it is
    computed; a result's bytes are given back when the last visitor lets it go.

    >>> store = HeldResults(max_bytes=400 * 1024**2, size=array_bytes)
    >>> result = store.get(("model", "image"), compute, need=90 * 1024**2)   # doctest: +SKIP
    >>> st.session_state["result"] = result                # the visitor's own strong reference  # doctest: +SKIP
    """

    def __init__(self, *, max_bytes: int | None = None, size: Callable[[Any], int] | None = None):
        self._values: "weakref.WeakValueDictionary[Hashable, Any]" = weakref.WeakValueDictionary()
        self._guard = threading.Lock()
        self._once = OncePerKey()
        self.max_bytes = max_bytes
        self._size = size or (lambda value: 0)
        self._held = 0  # bytes of the live results, and of those being computed (reserved)

    def get(self, key: Hashable, compute: Callable[[], Any], *, need: int = 0) -> Any:
        """The result for ``key``: the one a visitor holds already, or ``compute()`` (once).

        ``need``: the bytes the new result will take, reserved before it is computed.
        """
        with self._guard:
            value = self._values.get(key)
        if value is not None:
            return value
        lock = self._once.acquire(key)
        try:
            with self._guard:
                value = self._values.get(key)
            if value is None:
                self._reserve(need)
                try:
                    value = compute()
                finally:
                    with self._guard:
                        self._held -= need
                size = int(self._size(value))
                with self._guard:
                    self._values[key] = value
                    self._held += size
                weakref.finalize(value, self._release, size)
            return value
        finally:
            self._once.release(key, lock)

    def _reserve(self, need: int) -> None:
        with self._guard:
            if self.max_bytes is not None and need and self._held + need > self.max_bytes:
                from ..errors import BudgetError

                raise BudgetError(
                    f"This server is holding {self._held / 1024**2:,.0f} MB of other visitors' feature maps; yours would need "
                    f"{need / 1024**2:,.0f} MB more, past the {self.max_bytes / 1024**2:,.0f} MB it keeps for them. "
                    "Try again in a minute, or choose fewer layers or a smaller image."
                )
            self._held += need

    def _release(self, size: int) -> None:
        with self._guard:
            self._held -= size

    @property
    def nbytes(self) -> int:
        """Bytes of the results visitors hold now."""
        with self._guard:
            return self._held

    def __len__(self) -> int:
        with self._guard:
            return len(self._values)


def array_bytes(value: Any, *, depth: int = 3) -> int:
    """Bytes of the NumPy arrays (and bytes objects) inside ``value``: an array, a dataclass, a dict,
    a list or a tuple of those (to ``depth`` levels), for sizing a ``BoundedStore`` entry.

    >>> import numpy as np
    >>> array_bytes({"a": np.zeros(10), "b": [np.zeros(5, np.uint8), "text", b"png"]})
    88
    """
    import dataclasses

    import numpy as np

    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if depth == 0:
        return 0
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, dict):
        parts = list(value.values())
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        return 0
    return sum(array_bytes(part, depth=depth - 1) for part in parts)
