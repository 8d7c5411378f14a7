"""Expensive work on a shared server: a queue that lets a few jobs run at once, the limits a
deployment sets per visitor, and deadlines.

Loading a new model, computing filter patterns, Score-CAM or a data set run
can each take a CPU for seconds to minutes. On a server shared by strangers,
``JobQueue`` lets ``slots`` of them run at once and keeps the others waiting
in arrival order, telling each how many are ahead; ``Limits`` holds the caps
an operator sets through environment variables; ``with_deadline`` stops a job
that runs past its time. Nothing here knows about Streamlit.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Callable, Iterator, Mapping

from .errors import ActvizError, BudgetError, Cancelled

Progress = Callable[[int, int], "bool | None"]


@dataclass(frozen=True)
class Limits:
    """Caps an operator sets for a shared server, each from an environment variable.

    ``jobs`` (ACTVIZ_MAX_JOBS): expensive jobs running at once on the server;
    ``job_seconds`` (ACTVIZ_MAX_JOB_SECONDS): longest run of one job;
    ``pattern_steps`` / ``pattern_channels`` (ACTVIZ_MAX_PATTERN_STEPS / _CHANNELS):
    optimisation steps and channels per filter-pattern request;
    ``dataset_images`` (ACTVIZ_MAX_DATASET_IMAGES): images per data set run in the dashboard;
    ``upload_mb`` (ACTVIZ_MAX_UPLOAD_MB): largest upload accepted.
    """

    jobs: int = 1
    job_seconds: float = 300.0
    pattern_steps: int = 256
    pattern_channels: int = 16
    dataset_images: int = 5000
    upload_mb: int = 200

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Limits":
        """The limits set in ``env`` (default: os.environ); unset or empty values keep the defaults."""
        env = os.environ if env is None else env
        names = {
            "jobs": "ACTVIZ_MAX_JOBS", "job_seconds": "ACTVIZ_MAX_JOB_SECONDS", "pattern_steps": "ACTVIZ_MAX_PATTERN_STEPS",
            "pattern_channels": "ACTVIZ_MAX_PATTERN_CHANNELS", "dataset_images": "ACTVIZ_MAX_DATASET_IMAGES",
            "upload_mb": "ACTVIZ_MAX_UPLOAD_MB",
        }
        values = {}
        for field in fields(cls):
            text = (env.get(names[field.name]) or "").strip()
            if not text:
                continue
            kind = float if field.type in ("float", float) else int
            try:
                value = kind(text)
            except ValueError:
                raise ActvizError(f"{names[field.name]} must be a number (it is '{text}').") from None
            if value <= 0:
                raise ActvizError(f"{names[field.name]} must be above zero (it is {text}).")
            values[field.name] = value
        return cls(**values)


class JobQueue:
    """At most ``slots`` expensive jobs at once; the others wait their turn, first come first served.

    >>> queue = JobQueue(slots=1)
    >>> with queue.turn(waiting=lambda ahead: print(f"{ahead} ahead")):   # doctest: +SKIP
    ...     compute()
    """

    def __init__(self, slots: int = 1):
        self.slots = max(1, int(slots))
        self._condition = threading.Condition()
        self._line: list[int] = []  # tickets waiting, in arrival order
        self._running = 0
        self._tickets = itertools.count()

    @contextmanager
    def turn(self, *, waiting: Callable[[int], None] | None = None, poll: float = 0.5) -> Iterator[None]:
        """Wait for a free slot (calling ``waiting(jobs ahead)`` while waiting), then hold it.

        ``waiting`` may raise to give up (a visitor who chose something else):
        the place in line is released either way.
        """
        ticket = next(self._tickets)
        with self._condition:
            self._line.append(ticket)
        started = False
        try:
            while True:
                with self._condition:
                    ahead = self._line.index(ticket) + self._running - self.slots + 1
                    if ahead <= 0:
                        self._line.remove(ticket)
                        self._running += 1
                        started = True
                        break
                if waiting is not None:
                    waiting(ahead)
                with self._condition:
                    self._condition.wait(timeout=poll)
            yield
        finally:
            with self._condition:
                if started:
                    self._running -= 1
                elif ticket in self._line:
                    self._line.remove(ticket)
                self._condition.notify_all()

    @property
    def running(self) -> int:
        with self._condition:
            return self._running

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
