"""What one dashboard server shares between its visitors: the job queue and the stores, inside
one memory budget, held by the process itself.

Streamlit lets any client send a "clear cache" message, which empties ``st.cache_data`` and
``st.cache_resource`` for every visitor. Nothing here lives in those caches: ``server()`` is
one object per process, made on first use, so such a message changes nothing a visitor can
measure (no store emptied, no second job queue that would not count the jobs still running).

``MemoryBudget`` shares ``ACTVIZ_MEMORY_MB`` (default 2,000 MB: Community Cloud's container
has about 2.7 GB, and Python, TensorFlow and Streamlit take about 0.7 GB of it) between the
stores and the working memory of the jobs, so their caps add up to the budget and never past it.

>>> budget = MemoryBudget(2000 * 1024**2)
>>> budget.share("models") // 1024**2, budget.share("work") // 1024**2
(500, 500)
>>> sum(budget.share(part) for part in SHARES) <= budget.total
True
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import BudgetError
from .jobs import JobQueue, Limits
from .stores import BoundedStore, HeldResults, array_bytes

#: How the memory budget is shared: part -> (share of the budget, what it holds).
SHARES = {
    "models": (0.25, "models opened (their weights), at most 3"),
    "work": (0.25, "the working memory of the jobs running at once (a forward pass, a data set batch), split between them"),
    "results": (0.19, "the feature maps visitors are looking at (held while shown, shared by visitors on the same image)"),
    "sources": (0.12, "uploaded data set ZIPs (held once per content)"),
    "summaries": (0.07, "data set summaries (computed or opened)"),
    "explanations": (0.05, "explanations and their checks"),
    "concepts": (0.03, "concepts found in a class, and concept tests (TCAV)"),
    "pictures": (0.03, "pictures and numbers drawn for the screen (grids, charts, statistics, images as the model sees them)"),
    "patterns": (0.01, "pictures made to excite filters"),
}


@dataclass(frozen=True)
class MemoryBudget:
    """``total`` bytes shared out by ``SHARES``."""

    total: int

    def share(self, part: str) -> int:
        """Bytes of the budget kept for ``part`` (a key of ``SHARES``)."""
        return int(self.total * SHARES[part][0])

    def rows(self) -> list[dict]:
        """How the budget is shared, as table rows: part, MB, what it holds."""
        return [{"part": part, "MB": self.share(part) // 1024**2, "holds": holds} for part, (_, holds) in SHARES.items()]

    def refuse_over(self, part: str, size: int, what: str) -> None:
        """``BudgetError`` in words when ``size`` bytes of ``what`` would not fit in ``part``'s share."""
        if size > self.share(part):
            raise BudgetError(
                f"{what} would take {size / 1024**2:,.0f} MB of this server's memory; it keeps at most "
                f"{self.share(part) / 1024**2:,.0f} MB for {SHARES[part][1].split(' (')[0]} "
                "(the server's operator sets the total with ACTVIZ_MEMORY_MB)."
            )


@dataclass
class Server:
    """What the visitors of one server share: limits, the memory budget, the job queue, and stores
    keyed by content (so visitors share work without evicting or seeing each other's)."""

    limits: Limits
    budget: MemoryBudget
    queue: JobQueue
    models: BoundedStore  # (file digest, trusted) -> OpenModel
    results: HeldResults  # (model, image, preprocessing, scope) -> Activations, while a visitor holds it
    patterns: BoundedStore  # (model, preprocessing, layer, targets, method, objective, steps) -> Patterns
    summaries: BoundedStore  # (model, data set, settings) or ("file", digest) -> data set Summary
    sources: BoundedStore  # ("zip", digest) or ("configured", path) -> (data set Source, bytes it holds)
    explanations: BoundedStore  # (model, image, preprocessing, scope, method, class, layer, settings[, "checks"]) -> result
    concepts: BoundedStore  # (model, data set, class, settings) -> Concepts or Tcav
    pictures: BoundedStore  # (what, content key, ...) -> PNG bytes, arrays or numbers drawn for the screen
    files: BoundedStore  # (path, modified, size) or ("url", address) -> SHA-256 of the file's bytes

    @property
    def forward_bytes(self) -> int:
        """The memory one job may use for its forward passes: the work share split between the jobs at once."""
        return self.budget.share("work") // self.limits.jobs

    def nbytes(self) -> dict:
        """Bytes held now, per store (for an operator's view and the tests)."""
        stores = ("models", "results", "patterns", "summaries", "sources", "explanations", "concepts", "pictures")
        return {name: getattr(self, name).nbytes for name in stores}


def make_server(limits: Limits) -> Server:
    """A new server's state for ``limits`` (``server()`` keeps one per process)."""
    budget = MemoryBudget(limits.memory_mb * 1024**2)

    def store(part: str, entries: int, size) -> BoundedStore:
        return BoundedStore(max_entries=entries, max_bytes=budget.share(part), size=size)

    return Server(
        limits=limits, budget=budget, queue=JobQueue(limits.jobs),
        models=store("models", 3, lambda opened: 4 * sum(i.params for i in opened.probe.table if i.depth == 0)),
        results=HeldResults(max_bytes=budget.share("results"), size=array_bytes),
        patterns=store("patterns", 32, lambda p: p.images.nbytes + p.inputs.nbytes),
        summaries=store("summaries", 8, lambda summary: summary.nbytes),
        sources=store("sources", 4, lambda held: held[1]),
        explanations=store("explanations", 64, array_bytes),
        concepts=store("concepts", 16, lambda found: getattr(found, "nbytes", 0) or array_bytes(found)),
        pictures=store("pictures", 512, array_bytes),
        files=BoundedStore(max_entries=64),
    )


_server: Server | None = None
_server_lock = threading.Lock()


def server(env: Mapping[str, Any] | None = None, *, fallback: Mapping[str, Any] | None = None) -> Server:
    """This process's server state, made on first use from the settings in ``env`` (default:
    ``os.environ``) and ``fallback`` (the dashboard's Streamlit secrets)."""
    global _server
    with _server_lock:
        if _server is None:
            _server = make_server(Limits.from_env(env, fallback=fallback))
        return _server


def reset_server() -> None:
    """Forget this process's server state (tests, and a server whose settings changed)."""
    global _server
    with _server_lock:
        _server = None
