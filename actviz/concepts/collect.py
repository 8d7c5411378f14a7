"""The streaming pass that gathers what concepts need from a data set, on this machine or on Ray,
and the partial results that merge exactly.

A pass runs a *task* (``passes``: the model's answers, the layer's response to crops, whole
images read in concepts, flattened activations, gradients) over some of a source's images. It
has the data set engine's shape (``dataset.engine``, ``dataset.ray_engine``), reused rather
than reinvented:

- **local**: a background thread decodes and resizes the next ``PREFETCH`` batches
  (``dataset.plan.load_pixels``, several threads; Pillow releases the GIL) while TensorFlow runs
  the current one on the calling thread;
- **Ray**: Ray Data reads the files (``ray_engine``'s reading and decoding stage), and an actor
  class that holds the model runs the task on each batch (Ray Data's batch-inference shape: the
  model loaded once per actor); the driver merges the partial results as they arrive.

Each batch gives a ``Part``: rows (one per image or crop, each with an int64 ``key`` that
orders them), sums, lowest values, the images done and those skipped. Merging keeps the rows'
pieces in a list (no copying per batch) and adds the sums; ``finished`` puts the rows in key
order, so the rows come out the same whatever the batches and whatever order they were merged
in; sums agree to float rounding. Progress is ``progress(done, total)`` after each batch;
``False`` stops the pass with ``Cancelled``.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import Cancelled, ChoiceError
from ..dataset.plan import load_pixels
from ..dataset.sources import Source

ENGINES = ("local", "ray")
#: Batches decoded ahead of the one running through the model (as the data set engine).
PREFETCH = 2

Progress = Callable[[int, int], "bool | None"]


@dataclass
class Part:
    """A partial result of a pass, mergeable in any order.

    ``rows``: name -> list of arrays, all with the same first length per piece, including
    ``key`` int64 (the order of the rows once finished); ``sums``: name -> float64 array, added;
    ``lows``: name -> float, the smallest seen; ``done``: list of int64 arrays, the images
    handled; ``skipped``: (index, path, reason) of images that could not be read.
    """

    rows: dict = field(default_factory=dict)
    sums: dict = field(default_factory=dict)
    lows: dict = field(default_factory=dict)
    done: list = field(default_factory=list)
    skipped: tuple = ()

    @classmethod
    def of(cls, *, rows: dict | None = None, sums: dict | None = None, lows: dict | None = None,
           done: np.ndarray, skipped: Sequence = ()) -> "Part":
        """One batch's part: ``rows`` name -> array (one piece)."""
        return cls({k: [np.asarray(v)] for k, v in (rows or {}).items()}, {k: np.asarray(v, np.float64) for k, v in (sums or {}).items()},
                   dict(lows or {}), [np.asarray(done, np.int64)], tuple(skipped))

    def merge(self, other: "Part") -> "Part":
        """This part and ``other`` as one (neither is changed)."""
        rows = {k: list(self.rows.get(k, [])) + list(other.rows.get(k, [])) for k in {*self.rows, *other.rows}}
        sums = {k: self.sums[k] + other.sums[k] if k in self.sums and k in other.sums else self.sums.get(k, other.sums.get(k))
                for k in {*self.sums, *other.sums}}
        lows = {k: min(self.lows.get(k, np.inf), other.lows.get(k, np.inf)) for k in {*self.lows, *other.lows}}
        return Part(rows, sums, lows, self.done + other.done, self.skipped + other.skipped)

    def finished(self) -> "Finished":
        """The rows as arrays in key order, the images done sorted, the skipped files sorted."""
        rows = {k: np.concatenate(v) for k, v in self.rows.items() if v}
        order = np.argsort(rows["key"], kind="stable") if "key" in rows else None
        rows = {k: v[order] for k, v in rows.items()} if order is not None else rows
        done = np.unique(np.concatenate(self.done)) if self.done else np.zeros(0, np.int64)
        return Finished(rows, dict(self.sums), dict(self.lows), done, tuple(sorted(self.skipped, key=lambda s: (s[0], s[1]))))


@dataclass(frozen=True)
class Finished:
    """A pass's result: ``rows`` name -> array in key order; ``sums``; ``lows``; ``done`` int64
    sorted; ``skipped`` (index, path, reason) sorted."""

    rows: dict
    sums: dict
    lows: dict
    done: np.ndarray
    skipped: tuple

    def column(self, name: str, shape: tuple = (), dtype: Any = np.float32) -> np.ndarray:
        """A row array, or an empty one of ``shape`` per row when the pass gave no rows."""
        return self.rows[name] if name in self.rows else np.zeros((0, *shape), dtype)


class Stages:
    """Progress over several passes as one count: ``progress(done, total)`` with ``total`` the
    units of every pass planned (model inputs: a crop is one, an image read whole is one)."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.offset = progress, int(total), 0

    def add(self, units: int) -> None:
        """Plan ``units`` more (a pass whose size was known only after an earlier one)."""
        self.total += int(units)

    def report(self, done: int) -> None:
        """``done`` units of the current pass are finished; ``Cancelled`` if the caller says stop."""
        if self.progress is not None and self.progress(self.offset + int(done), self.total) is False:
            raise Cancelled(f"Stopped after {self.offset + int(done):,} of {self.total:,} model inputs; nothing was kept.")

    def next_stage(self, units: int) -> None:
        self.offset += int(units)


# --- the engines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """How passes run: ``engine`` "local" or "ray"; ``batch_size`` images per batch (how the work
    is grouped; the model runs in its own fixed chunks); ``workers`` decoding threads (local);
    ``model``: what Ray actors open (a path is sent as bytes); ``trust``, ``class_names`` as for
    ``open_model``; ``actors``, ``cpus_per_actor`` as for the data set engine."""

    engine: str = "local"
    batch_size: int = 32
    workers: int | None = None
    model: Any = None
    trust: bool = False
    class_names: Sequence[str] | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise ChoiceError(f"Unknown engine '{self.engine}'. Choose one of: {', '.join(ENGINES)}.")
        if isinstance(self.batch_size, bool) or not 1 <= int(self.batch_size) <= 1024:
            raise ChoiceError(f"The batch size must be between 1 and 1024 images (got {self.batch_size}).")


def run_pass(task: Any, probe: Any, source: Source, todo: np.ndarray, runner: Runner, stages: Stages, image_shape: tuple) -> Finished:
    """Run ``task`` over images ``todo`` int64 of ``source``, merging the parts as they come;
    reports progress in ``task.units`` per image."""
    todo = np.asarray(todo, np.int64)
    units = int(getattr(task, "units", 1))
    merged, done = Part(), 0
    stages.report(0)
    if len(todo):
        stream = (ray_parts(task, source, todo, runner, image_shape) if runner.engine == "ray"
                  else local_parts(task, probe, source, todo, batch_size=runner.batch_size, image_shape=image_shape, workers=runner.workers))
        try:
            for part in stream:
                merged = merged.merge(part)
                done += sum(len(d) for d in part.done) * units
                stages.report(done)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    stages.next_stage(len(todo) * units)
    return merged.finished()


def local_parts(task: Any, probe: Any, source: Source, todo: np.ndarray, *, batch_size: int, image_shape: tuple, workers: int | None = None) -> Iterator[Part]:
    """The local engine: one ``Part`` per batch of ``batch_size`` images, in order; a background
    thread decodes the next ``PREFETCH`` batches. Closing the generator stops the thread."""
    groups = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def produce() -> None:
        try:
            with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
                for group in groups:
                    loaded = list(pool.map(lambda i: load_pixels(source, i, image_shape), group))
                    while not stop.is_set():
                        try:
                            ready.put((group, loaded), timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            ready.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            ready.put(exc)

    thread = threading.Thread(target=produce, name="actviz-concepts-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            group, loaded = item
            yield task(probe, source, group, loaded)
    finally:
        stop.set()
        while thread.is_alive():
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass


class PartWorker:
    """A Ray actor: holds the model and runs a task on batches of pixels (Ray Data's batch
    inference shape), returning each batch's ``Part`` pickled."""

    def __init__(self, model: Any, trust: bool, class_names: Sequence[str] | None, task: Any, source: Any):
        import ray

        from ..safety.models import open_model

        model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.source: Source = ray.get(source) if isinstance(source, ray.ObjectRef) else source
        self.task = ray.get(task) if isinstance(task, ray.ObjectRef) else task
        self.probe = open_model(model, trust=trust, class_names=class_names).probe

    def __call__(self, batch: dict) -> dict:
        index = np.asarray(batch["index"], np.int64)
        reasons = [str(r) for r in batch["reason"]]
        loaded = [(None, reason) if reason else (pixels, None) for pixels, reason in zip(batch["pixels"], reasons)]
        part = self.task(self.probe, self.source, index, loaded)
        return {"part": np.array([pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)], dtype=object)}


def ray_parts(task: Any, source: Source, todo: np.ndarray, runner: Runner, image_shape: tuple) -> Iterator[Part]:
    """The Ray engine: one ``Part`` per batch, in the order Ray finishes them. Ray must be
    connected (``ray_session``). The model goes to the actors through the object store."""
    from ..dataset import ray_engine

    ray = ray_engine.import_ray()
    model = runner.model
    if isinstance(model, (str, Path)):
        model = Path(model).read_bytes()
    model_ref, source_ref, task_ref = ray.put(model), ray.put(source), ray.put(task)
    dataset, lookup = ray_engine.read_images(ray, source, todo)
    pixels = dataset.map_batches(
        ray_engine.decode_batch, batch_size=ray_engine.DECODE_BATCH, batch_format="numpy",
        fn_kwargs={"source": source_ref, "lookup": lookup, "image_shape": tuple(image_shape)},
    )
    count = runner.actors or max(1, len([n for n in ray.nodes() if n.get("Alive")]))
    parts = pixels.map_batches(
        PartWorker, batch_size=int(runner.batch_size), batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=count),
        num_cpus=runner.cpus_per_actor,
        fn_constructor_kwargs={"model": model_ref, "trust": runner.trust, "class_names": runner.class_names, "task": task_ref, "source": source_ref},
    )
    for row in parts.iter_rows():
        yield pickle.loads(bytes(row["part"]))  # our own actors' bytes, inside the job: trusted


@contextmanager
def ray_session(engine: str, address: str | None) -> Iterator[None]:
    """Connect to Ray for the passes of one call (``address``, or a Ray started here and stopped
    at the end); nothing for the local engine. A Ray the caller started is left running."""
    if engine != "ray":
        yield
        return
    from ..dataset import ray_engine

    ray = ray_engine.import_ray()
    started = ray_engine.connect(ray, address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
