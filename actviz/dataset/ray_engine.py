"""The Ray engine: Ray Data reads and decodes the images, actors holding the model summarise
batches, the driver merges the partial summaries as they arrive.

    files --read_binary_files--> bytes --map_batches(decode, tasks)--> pixels
          --map_batches(SummaryWorker, actors)--> one partial summary per batch --> driver: merge

Ray Data's own batch-inference shape: a callable class passed to ``map_batches`` loads the
model once per actor; its ``__call__`` runs a batch through ``plan.BatchRunner`` (the same
code as the local engine) and returns the batch's partial summary as bytes. Partial summaries
merge exactly (``summary``), so the order in which Ray finishes them does not matter. Images in
a ZIP or in the package (the demo) are read by the decode tasks themselves.

On a cluster, the image paths must be readable from every node (a shared file system), and
actviz is shipped to the workers with the job (``runtime_env`` ``py_modules``). Ray is
optional: ``pip install "ray[data]"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import ActvizError
from .plan import BatchRunner, Plan, load_pixels
from .sources import Source
from .summary import Summary

#: Rows the reading stage decodes per task.
DECODE_BATCH = 64


class RayMissingError(ActvizError):
    """Ray is not installed."""


class SummaryWorker:
    """A Ray actor: holds the model (in the driver's precision) and turns batches of pixels into
    partial summaries."""

    def __init__(self, model: Any, trust: bool, class_names: Sequence[str] | None, plan: Plan, source: Any, precision: str = "float32"):
        import ray

        from ..core.precision import at_precision
        from ..safety.models import open_model

        model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.source: Source = ray.get(source) if isinstance(source, ray.ObjectRef) else source
        self.runner = BatchRunner(at_precision(open_model(model, trust=trust, class_names=class_names), precision).probe, plan)

    def __call__(self, batch: dict) -> dict:
        index = np.asarray(batch["index"], np.int64)
        reasons = [str(r) for r in batch["reason"]]
        loaded = [(None, reason) if reason else (pixels, None) for pixels, reason in zip(batch["pixels"], reasons)]
        partial = self.runner(self.source, index, loaded)
        return {"partial": np.array([partial.to_bytes()], dtype=object)}


def decode_batch(batch: dict, *, source: Any, lookup: Any, image_shape: tuple) -> dict:
    """Ray Data task: rows of file bytes (``path``, ``bytes``) or of image numbers (``index``)
    -> rows of (``index``, ``pixels`` uint8 (H, W, C), ``reason`` empty or why it was skipped)."""
    source = _fetched(source)
    rows: list[tuple[int, Any, str]] = []
    if "bytes" in batch:
        paths = _fetched(lookup)
        for path, data in zip(batch["path"], batch["bytes"]):
            pixels, reason = _decode(source, data, image_shape)
            rows += [(i, pixels, reason) for i in paths[_plain(path)]]
    else:
        for i in batch["index"]:
            pixels, reason = load_pixels(source, int(i), image_shape)
            rows.append((int(i), pixels, reason or ""))
    blank = np.zeros(image_shape, np.uint8)
    return {
        "index": np.array([r[0] for r in rows], np.int64),
        "pixels": np.stack([blank if r[1] is None else r[1] for r in rows]) if rows else np.zeros((0, *image_shape), np.uint8),
        "reason": np.array([r[2] for r in rows], dtype=object),
    }


def ray_partials(
    model: Any, plan: Plan, source: Source, todo: np.ndarray, *, trust: bool = False, address: str | None = None,
    class_names: Sequence[str] | None = None, actors: int | None = None, cpus_per_actor: float = 1.0, precision: str = "float32",
) -> Iterator[tuple[Summary, np.ndarray]]:
    """The Ray engine: (partial summary, indices covered) per batch, in the order Ray finishes them.

    ``model``: what ``open_model`` opens (a path is read here and sent as bytes, so workers on
    other machines need no copy); ``address``: an existing cluster ("auto", "ray://host:10001"),
    None to start Ray on this machine (and stop it at the end); ``actors``: model replicas
    (default: one per node: TensorFlow uses all of a node's cores); ``cpus_per_actor``: CPUs each
    actor reserves (the rest read and decode images); ``precision``: what the actors run the model
    in (bfloat16 where their processors have the instructions, else float32).
    """
    if len(todo) == 0:
        return
    ray = import_ray()
    started = connect(ray, address)
    try:
        if isinstance(model, (str, Path)):
            model = Path(model).read_bytes()
        model_ref = ray.put(model)
        source_ref = ray.put(source)
        dataset, lookup = read_images(ray, source, todo)
        pixels = dataset.map_batches(
            decode_batch, batch_size=DECODE_BATCH, batch_format="numpy",
            fn_kwargs={"source": source_ref, "lookup": lookup, "image_shape": plan.layout.image_shape},
        )
        count = actors or max(1, len([n for n in ray.nodes() if n.get("Alive")]))
        partials = pixels.map_batches(
            SummaryWorker, batch_size=plan.batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=count), num_cpus=cpus_per_actor,
            fn_constructor_kwargs={"model": model_ref, "trust": trust, "class_names": class_names, "plan": plan, "source": source_ref,
                                   "precision": precision},
        )
        for row in partials.iter_rows():
            partial = Summary.load(bytes(row["partial"]))
            covered = np.concatenate([partial.index, np.array([s[0] for s in partial.skipped], np.int64)])
            yield partial, covered
    finally:
        if started:
            ray.shutdown()


def read_images(ray: Any, source: Source, todo: np.ndarray) -> tuple[Any, Any]:
    """A Ray dataset of the images to do: file bytes read by Ray Data when they are files on
    disk (with a lookup, path -> image numbers, in the object store), else image numbers."""
    files = source.file_paths()
    if files is None:
        return ray.data.from_items([{"index": int(i)} for i in todo]), None
    lookup: dict[str, list[int]] = {}
    for i in todo:
        lookup.setdefault(_plain(str(Path(files[i]).resolve())), []).append(int(i))
    return ray.data.read_binary_files(sorted(lookup), include_paths=True), ray.put(lookup)


def _decode(source: Source, data: Any, image_shape: tuple) -> tuple[np.ndarray | None, str]:
    from ..errors import ImageError
    from ..inputs.images import fit_image

    try:
        return fit_image(source.decode(bytes(data)), image_shape), ""
    except ImageError as exc:
        return None, str(exc)


def _fetched(value: Any) -> Any:
    """An object-store value, fetched once per worker process."""
    import ray

    if not isinstance(value, ray.ObjectRef):
        return value
    key = value.hex()
    if key not in _cache:
        _cache.clear()
        _cache[key] = ray.get(value)
    return _cache[key]


_cache: dict[str, Any] = {}


def _plain(path: str) -> str:
    """A path as Ray Data reports it (no ``file://`` scheme, no trailing slash)."""
    text = str(path)
    return text[len("file://"):] if text.startswith("file://") else text


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 -- Ray Data is a separate extra: ray[data]
    except ImportError:
        raise RayMissingError('The Ray engine needs Ray: pip install "ray[data]" (or use the local engine).') from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Connect to ``address`` (or start Ray here); True when this call started Ray."""
    if ray.is_initialized():
        return False
    import logging

    runtime_env = {"py_modules": [str(Path(__file__).resolve().parents[1])]}  # the actviz package folder, for the workers
    try:
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ActvizError(f"Could not reach the Ray cluster at '{address}' ({' '.join(str(exc).split())[:200]}).") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows its own progress
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return True
