"""Expensive work on a shared server: a queue that lets a few jobs run at once, the limits a
deployment sets per visitor, and deadlines.

Loading a new model, computing filter patterns, Score-CAM or a data set run
can each take a CPU for seconds to minutes. On a server shared by strangers,
``JobQueue`` lets ``slots`` of them run at once, one per visitor, and keeps the
others waiting (each visitor's first job before anyone's second), telling each
how many are ahead; ``Limits`` holds the caps an operator sets; ``with_deadline`` stops a job
that runs past its time. Nothing here knows about Streamlit.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Callable, Hashable, Iterator, Mapping

from ..core.batches import Progress
from ..errors import BudgetError, Cancelled
from ..settings import value



#: Each limit's variable (see ``settings``).
VARIABLES = {
    "jobs": "ACTVIZ_MAX_JOBS", "job_seconds": "ACTVIZ_MAX_JOB_SECONDS", "pattern_steps": "ACTVIZ_MAX_PATTERN_STEPS",
    "pattern_channels": "ACTVIZ_MAX_PATTERN_CHANNELS", "dataset_images": "ACTVIZ_MAX_DATASET_IMAGES",
    "upload_mb": "ACTVIZ_MAX_UPLOAD_MB", "memory_mb": "ACTVIZ_MEMORY_MB",
}


@dataclass(frozen=True)
class Limits:
    """Caps an operator sets for a shared server, each from its ``ACTVIZ_*`` setting (``VARIABLES``).

    ``jobs``: expensive jobs running at once on the server; ``job_seconds``: longest run of one
    job; ``pattern_steps`` / ``pattern_channels``: optimisation steps and channels per
    filter-pattern request; ``dataset_images``: images per data set run in the dashboard;
    ``upload_mb``: largest upload accepted; ``memory_mb``: the memory the server may hold and
    use for its visitors (shared out by ``server.MemoryBudget``).
    """

    jobs: int = 1
    job_seconds: float = 300.0
    pattern_steps: int = 256
    pattern_channels: int = 16
    dataset_images: int = 5000
    upload_mb: int = 200
    memory_mb: int = 2000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, fallback: Mapping[str, str] | None = None) -> "Limits":
        """The limits set in ``env`` (default: os.environ), else in ``fallback`` (Streamlit secrets);
        unset or empty values keep the defaults; a bad one is a ``SettingError`` naming it."""
        return cls(**{f.name: value(VARIABLES[f.name], env, fallback=fallback) for f in fields(cls)})


@dataclass(order=True)
class _Ticket:
    """A job waiting for its turn: served by ``round`` (how many jobs its owner had running or
    waiting when it came), then by arrival, so a visitor's second job waits behind every other
    visitor's first."""

    round: int
    number: int
    owner: Hashable = field(compare=False, default=None)


class JobQueue:
    """At most ``slots`` expensive jobs at once, at most one per owner (a visitor's session); the
    others wait their turn, each visitor's first job before anyone's second, then first come first served.

    >>> queue = JobQueue(slots=1)
    >>> with queue.turn(owner=session_id, waiting=lambda ahead: print(f"{ahead} ahead")):   # doctest: +SKIP
    ...     compute()
    """

    def __init__(self, slots: int = 1):
        self.slots = max(1, int(slots))
        self._condition = threading.Condition()
        self._line: list[_Ticket] = []  # tickets waiting, in the order they are served
        self._running: dict[Hashable, int] = {}  # owner -> jobs running (None: jobs without an owner)
        self._numbers = itertools.count()

    @contextmanager
    def turn(self, *, owner: Hashable = None, waiting: Callable[[int], None] | None = None, poll: float = 0.5) -> Iterator[None]:
        """Wait for a free slot (calling ``waiting(jobs ahead)`` while waiting), then hold it.

        ``owner``: who asks (a visitor's session); an owner runs one job at a time, and a job of
        an owner who already has one running or waiting goes behind every other owner's.
        ``waiting`` may raise to give up (a visitor who chose something else): the place in
        line is released either way.
        """
        with self._condition:
            earlier = self._running.get(owner, 0) + sum(1 for t in self._line if t.owner == owner) if owner is not None else 0
            ticket = _Ticket(earlier, next(self._numbers), owner)
            bisect.insort(self._line, ticket)
        started = False
        try:
            while True:
                with self._condition:
                    if self._may_start(ticket):
                        self._line.remove(ticket)
                        self._running[owner] = self._running.get(owner, 0) + 1
                        started = True
                        break
                    ahead = self._line.index(ticket) + max(0, self.running - self.slots + 1)
                if waiting is not None:
                    waiting(ahead)
                with self._condition:
                    self._condition.wait(timeout=poll)
            yield
        finally:
            with self._condition:
                if started:
                    self._running[owner] -= 1
                    if not self._running[owner]:
                        del self._running[owner]
                elif ticket in self._line:
                    self._line.remove(ticket)
                self._condition.notify_all()

    def _may_start(self, ticket: _Ticket) -> bool:
        """True when a slot is free and ``ticket`` is the first in line whose owner runs nothing."""
        free = self.slots - sum(self._running.values())
        if free <= 0:
            return False
        ready = [t for t in self._line if t.owner is None or t.owner not in self._running]
        return ticket in ready[:free]

    @property
    def running(self) -> int:
        with self._condition:
            return sum(self._running.values())

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._line)


def with_deadline(progress: Progress | None, seconds: float, *, what: str = "This computation") -> Progress:
    """``progress`` that also stops the work (``BudgetError``) once it has run ``seconds``.

    A ``False`` from ``progress`` still means "cancelled" (``Cancelled``).
    """
    start = time.monotonic()

    def report(done: int, total: int) -> bool | None:
        if progress is not None and progress(done, total) is False:
            raise Cancelled(f"{what} was stopped.")
        if time.monotonic() - start > seconds:
            raise BudgetError(
                f"{what} was stopped after {seconds:.0f} seconds, the time one job may take on this server "
                f"({done} of {total} steps were done). Ask for less (fewer channels, steps or images) and try again."
            )
        return None

    return report
