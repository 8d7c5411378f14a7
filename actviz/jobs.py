"""One expensive job at a time per server: Score-CAM, SmoothGrad, Integrated Gradients, occlusion
and the checks run the model hundreds of times, and two at once on a small machine take as long
as one after the other while holding twice the memory. Others wait, told what they wait for.

Streamlit runs every visitor's script in one process, so one ``OneAtATime``
kept with ``st.cache_resource`` is seen by all of them.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from .errors import Cancelled


class OneAtATime:
    """A turn for one expensive job at a time in this process.

    >>> gate = OneAtATime()
    >>> with gate.turn("Score-CAM", waiting=print):   # doctest: +SKIP
    ...     result = explain(probe, batch, method="scorecam", progress=...)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: str | None = None

    @property
    def running(self) -> str | None:
        """What runs now (the label given to ``turn``), or None."""
        return self._running

    @contextmanager
    def turn(
        self, label: str, *, waiting: Callable[[str], None] | None = None,
        cancelled: Callable[[], bool] | None = None, poll: float = 0.5,
    ) -> Iterator[None]:
        """Wait for the turn, run the block, give the turn back (also on an error).

        ``waiting(message)`` is told once, in plain words, when another job is
        running; ``cancelled()`` is asked every ``poll`` seconds while waiting,
        and True gives up with ``Cancelled``.
        """
        told = False
        while not self._lock.acquire(timeout=poll):
            if cancelled is not None and cancelled():
                raise Cancelled("Stopped while waiting for another explanation to finish.")
            if waiting is not None and not told:
                ahead = self._running or "another explanation"
                waiting(f"Waiting: {ahead} is running for someone else; this one starts as soon as it ends.")
                told = True
        self._running = label
        try:
            yield
        finally:
            self._running = None
            self._lock.release()
