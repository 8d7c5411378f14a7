"""One streaming pass over a data set: plan it, reduce each batch inside the model, merge.

``summarize`` is the entry point. Before any work it works out a ``Plan`` (the layers, the
image size, the preprocessing, how the data set's labels map to the model's classes) and
checks the memory of one batch. Then a stream of partial summaries, one per batch, is merged
into one ``Summary``: from the local engine here (a background thread decodes and resizes the
next batches while TensorFlow runs the current one) or from Ray (``ray_engine``).

What one batch becomes, and the ``Plan``, are in ``plan``.

The batch is as large as the probe's memory allows (``plan``), and never larger than the images
to do. A model run in bfloat16 (``core.precision.at_precision``) is summarised by its twin; the
summary's notes say so.

A run with a ``checkpoint`` file saves the summary so far, and which images it covered, every
``checkpoint_seconds`` and when stopped (Ctrl-C, a cancelled progress); ``resume=True``
continues from it (after checking it was made from the same model, data and settings).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import Cancelled, ChoiceError
from .plan import BatchRunner, Plan, load_pixels, make_plan, plan_seconds
from .sources import DatasetError, Source, open_source
from .summary import Summary

ENGINES = ("local", "ray")
#: Batches decoded ahead of the one running through the model.
PREFETCH = 2

Progress = Callable[[int, int], "bool | None"]


def local_partials(probe: Any, plan: Plan, source: Source, todo: np.ndarray, *, workers: int | None = None) -> Iterator[tuple[Summary, np.ndarray]]:
    """The local engine: (partial summary, indices covered) per batch, in order.

    A background thread decodes and resizes the next ``PREFETCH`` batches (with ``workers``
    threads; Pillow releases the GIL while decoding) while TensorFlow runs the current one.
    Closing the generator stops the thread.
    """
    runner = BatchRunner(probe, plan)
    batches = [todo[i : i + plan.batch_size] for i in range(0, len(todo), plan.batch_size)]
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()
    shape = plan.layout.image_shape

    def produce() -> None:
        try:
            with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
                for batch in batches:
                    loaded = list(pool.map(lambda i: load_pixels(source, i, shape), batch))
                    while not stop.is_set():
                        try:
                            ready.put((batch, loaded), timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            ready.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            ready.put(exc)

    thread = threading.Thread(target=produce, name="actviz-dataset-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            batch, loaded = item
            yield runner(source, batch, loaded), batch
    finally:
        stop.set()
        while thread.is_alive():
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass


def summarize(
    model: Any = None, source: Any = None, *, layers: Sequence[str | int] | None = None, top_k: int = 9,
    batch_size: int = 32, gradcam: bool = False, cam_layer: str | int | None = None, preprocessing: str = "auto",
    image_size: tuple[int, int] | None = None, engine: str = "local", address: str | None = None,
    workers: int | None = None, labels: str = "folders", class_names: Sequence[str] | None = None, trust: bool = False,
    indices: Sequence[int] | None = None, checkpoint: str | os.PathLike | None = None, resume: bool = False,
    checkpoint_seconds: float = 60.0, progress: Progress | None = None, mistakes: int = 24,
    actors: int | None = None, cpus_per_actor: float = 1.0,
) -> Summary:
    """Summarise a model's response over a data set in one streaming pass.

    ``model``: a model file (path or bytes), a ``keras.Model``, an ``OpenModel``, or None for
    the demo; ``source``: a ``Source`` or anything ``open_source`` opens (a folder, a CSV, a
    ZIP path or bytes; None: the demo digits). ``layers``: names or numbers (default: the
    convolution and pooling layers); ``top_k``: images kept per channel; ``gradcam``: also the
    mean Grad-CAM heat maps (a backward pass per batch) at ``cam_layer`` (default: the last
    convolution); ``batch_size``: the most images a pass, fewer when the memory the probe may use
    (``Probe.max_bytes``) holds fewer; ``image_size``: (H, W) for a model that takes any size (default 224 x 224);
    ``engine``: "local" or "ray" (``address``: an existing Ray cluster; ``actors``,
    ``cpus_per_actor``: see ``ray_engine.ray_partials``); ``workers``: decoding threads of the
    local engine; ``indices``: only these
    images (to split the work); ``checkpoint`` / ``resume``: see the module; ``progress``:
    called as ``progress(done, total)``, returning False stops the pass (``Cancelled``).

    >>> summary = summarize(None, None, top_k=9)       # the demo model over the demo digits  # doctest: +SKIP
    >>> summary.accuracy()                              # doctest: +SKIP
    0.954
    """
    from ..safety.models import open_model

    if engine not in ENGINES:
        raise ChoiceError(f"Unknown engine '{engine}'. Choose one of: {', '.join(ENGINES)}.")
    opened = open_model(model, trust=trust, class_names=class_names)
    names = list(class_names) if class_names else opened.class_names  # given names win over an opened model's
    source = source if isinstance(source, Source) else open_source(source, labels=labels)
    plan = make_plan(
        opened.probe, source, class_names=names, layers=layers, top_k=top_k, batch_size=batch_size,
        gradcam=gradcam, cam_layer=cam_layer, preprocessing=preprocessing, image_size=image_size, mistakes=mistakes,
    )
    todo = np.arange(len(source), dtype=np.int64) if indices is None else np.unique(np.asarray(indices, np.int64))
    identity = _identity(opened, source, plan)
    summary, covered = Summary.empty(plan.layout), np.zeros(len(source), bool)
    if checkpoint is not None and resume and Path(checkpoint).exists():
        summary, covered = load_checkpoint(checkpoint, identity)
    remaining = todo[~covered[todo]]
    plan = replace(plan, batch_size=max(1, min(plan.batch_size, len(remaining))))  # no pass padded past the images to do
    if engine == "ray":
        from ..core.precision import precision_of
        from .ray_engine import ray_partials

        shipped = opened.model if model is opened else model  # a file is sent as bytes, a model in memory pickled
        stream = ray_partials(shipped, plan, source, remaining, trust=trust, address=address, class_names=names,
                              actors=actors, cpus_per_actor=cpus_per_actor, precision=precision_of(opened.probe))
    else:
        stream = local_partials(opened.probe, plan, source, remaining, workers=workers)
    summary = _merge_stream(stream, summary, covered, todo, identity, checkpoint=checkpoint, every=checkpoint_seconds, progress=progress)
    listed = tuple((-1, s.path, s.reason) for s in source.skipped) if indices is None else ()
    meta = {
        "model": opened.name, "model_digest": opened.loaded.digest, "source": source.spec(), "data": source.describe(),
        "fingerprint": source.fingerprint, "preprocessing": plan.scaling,
        "notes": list(plan.notes) + list(source.notes) + _precision_notes(opened.probe),
        "engine": engine, "batch_size": plan.batch_size, "labelled": source.labelled,
    }
    return replace(summary, images=tuple(source.paths), skipped=tuple(sorted(listed + summary.skipped, key=lambda s: (s[0], s[1]))), meta=meta)


def estimate_seconds(
    model: Any = None, source: Any = None, *, indices: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
    labels: str = "folders", trust: bool = False, **plan_options: Any,
) -> float:
    """Seconds ``summarize`` with the same arguments would take on this machine (local engine),
    worked out before any image is read: ``plan_options`` are ``make_plan``'s (layers, top_k,
    batch_size, gradcam, cam_layer, preprocessing, image_size, mistakes)."""
    from ..safety.models import open_model

    opened = open_model(model, trust=trust, class_names=class_names)
    source = source if isinstance(source, Source) else open_source(source, labels=labels)
    names = list(class_names) if class_names else opened.class_names
    plan = make_plan(opened.probe, source, class_names=names, **plan_options)
    return plan_seconds(opened.probe, plan, len(source) if indices is None else len(np.unique(np.asarray(indices))))


def _merge_stream(stream, summary: Summary, covered: np.ndarray, todo: np.ndarray, identity: dict, *, checkpoint, every: float, progress: Progress | None) -> Summary:
    """Merge the partial summaries of ``stream`` into ``summary``, saving checkpoints and
    reporting progress; on a stop (cancel, Ctrl-C) the checkpoint is saved before leaving."""
    total, done = len(todo), int(covered[todo].sum())
    saved_at = time.monotonic()
    try:
        if progress is not None and progress(done, total) is False:
            raise Cancelled("Stopped before the first image.")
        for partial, indices in stream:
            summary = summary.merge(partial)
            covered[indices] = True
            done += len(indices)
            if checkpoint is not None and time.monotonic() - saved_at > every:
                save_checkpoint(checkpoint, summary, covered, identity)
                saved_at = time.monotonic()
            if progress is not None and progress(done, total) is False:
                raise Cancelled(f"Stopped after {done:,} of {total:,} images.")
    except (KeyboardInterrupt, Cancelled):
        if checkpoint is not None and done:
            save_checkpoint(checkpoint, summary, covered, identity)
        raise
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return summary


# --- checkpoints -------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, summary: Summary, covered: np.ndarray, identity: dict) -> None:
    """Write the summary so far and the images covered to ``path``, replaced atomically; a Ctrl-C
    during the write waits until the file is whole (then it is raised)."""
    import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _interrupt_deferred():
        buffer = io.BytesIO()
        np.savez(buffer, summary=np.frombuffer(summary.to_bytes(), np.uint8), covered=np.packbits(covered),
                 size=np.array(len(covered)), identity=np.frombuffer(json.dumps(identity, sort_keys=True).encode(), np.uint8))
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, path)


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise it: an interrupted write of a ZIP
    leaves it half-made and ends in another error than KeyboardInterrupt. Outside the main thread
    (where no signal arrives) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def load_checkpoint(path: str | os.PathLike, identity: dict) -> tuple[Summary, np.ndarray]:
    """The summary and covered images saved in ``path``; ``DatasetError`` when it was made from a
    different model, data set or settings (or is not a checkpoint)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            saved = json.loads(stored["identity"].tobytes().decode())
            covered = np.unpackbits(stored["covered"])[: int(stored["size"])].astype(bool)
            summary = Summary.load(stored["summary"].tobytes())
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"The saved progress in '{path}' cannot be read ({exc}); run without --resume to start over.") from None
    changed = [key for key in dict.fromkeys([*identity, *saved]) if saved.get(key) != identity.get(key)]
    if changed:
        words = {"model": "another model", "data": "other images or labels", "layout": "other layers or settings",
                 "preprocessing": "another preprocessing", "gradcam": "Grad-CAM set otherwise", "precision": "another precision"}
        raise DatasetError(
            f"The saved progress in '{Path(path).parent}' was made with {' and '.join(words.get(k, k) for k in changed)}, "
            "so it cannot be continued. Run without --resume to start over (or use another output folder)."
        )
    return summary, covered


def _identity(opened: Any, source: Source, plan: Plan) -> dict:
    from ..core.precision import precision_of

    identity = {"model": opened.loaded.digest, "data": source.fingerprint, "layout": plan.layout.to_json(),
                "preprocessing": plan.scaling, "gradcam": plan.gradcam}
    precision = precision_of(opened.probe)
    return identity if precision == "float32" else {**identity, "precision": precision}


def _precision_notes(probe: Any) -> list[str]:
    """What the summary says about the precision it was computed in (nothing for float32)."""
    from ..core.precision import precision_of

    if precision_of(probe) == "float32":
        return []
    return ["Computed in bfloat16 (the model's layers in bfloat16, its outputs in float32): within about 1% of float32."]
