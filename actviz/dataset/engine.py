"""One streaming pass over a data set: plan it, reduce each batch inside the model, merge.

``summarize`` is the entry point. Before any work it works out a ``Plan`` (the layers, the
image size, the preprocessing, how the data set's labels map to the model's classes) and
checks the memory of one batch. Then a stream of partial summaries, one per batch, is merged
into one ``Summary``: from the local engine here (a background thread decodes and resizes the
next batches while TensorFlow runs the current one) or from Ray (``ray_engine``).

The feature maps never reach numpy: ``reduction_model`` is one compiled TensorFlow graph whose
outputs are, per chosen layer, each channel's spatial maximum, minimum and mean (float32
(N, 3, C)) and the position of the maximum (int (N, C)), computed right after the layer, plus
the model's probabilities. A batch costs the model's own forward pass and three reductions over
maps it computes anyway (about a tenth more for VGG16's 17 layers at 300 x 300).

Batches are always ``batch_size`` images (the last one padded with blank images whose results
are dropped), so the compiled function is traced once and every image is computed by the same
kernels whichever batch it lands in: splitting the work differently gives the same top-k.

A run with a ``checkpoint`` file saves the summary so far, and which images it covered, every
``checkpoint_seconds`` and when stopped (Ctrl-C, a cancelled progress); ``resume=True``
continues from it (after checking it was made from the same model, data and settings).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import ActvizError, Cancelled, ChoiceError, ImageError
from ..predictions import class_count, class_labels
from ..preprocessing import choose_preprocessing, preprocess
from .sources import DatasetError, Source, open_source
from .summary import MAX_CELL_CLASSES, Layout, Summary, batch_summary, skipped_only

ENGINES = ("local", "ray")
#: Image size for models that take any size (all images of a pass share one size).
DEFAULT_SIZE = (224, 224)
#: Most elements of the per-class average images (K x H x W x C) kept in a summary.
MAX_CLASS_PIXELS = 8_000_000
#: Images per Grad-CAM pass (its backward pass keeps every layer's output for the batch).
CAM_CHUNK = 8
#: Batches decoded ahead of the one running through the model.
PREFETCH = 2

Progress = Callable[[int, int], "bool | None"]


@dataclass(frozen=True)
class Plan:
    """Everything fixed before a pass (picklable: the Ray workers get it).

    ``layout``: what the summary holds; ``method``: the preprocessing; ``label_map``: int64
    (L,) the model class of each of the data set's label names; ``batch_size``;
    ``gradcam``: whether Grad-CAM runs; ``notes``: plain words for the user.
    """

    layout: Layout
    method: str
    label_map: np.ndarray | None
    batch_size: int
    gradcam: bool
    notes: tuple = ()

    def labels(self, source: Source, indices: np.ndarray) -> np.ndarray:
        """int64 (n,): the model class of each image's label, -1 where there is none."""
        if source.labels is None or self.label_map is None:
            return np.full(len(indices), -1, np.int64)
        raw = source.labels[np.asarray(indices, np.int64)]
        return np.where(raw >= 0, self.label_map[np.maximum(raw, 0)], -1).astype(np.int64)


def make_plan(
    probe: Any, source: Source, *, class_names: Sequence[str] | None = None, layers: Sequence[str | int] | None = None,
    top_k: int = 9, batch_size: int = 32, gradcam: bool = False, cam_layer: str | int | None = None,
    preprocessing: str = "auto", image_size: tuple[int, int] | None = None, mistakes: int = 24,
) -> Plan:
    """Work out a pass before doing it; raises ``ActvizError`` for impossible settings."""
    if not 1 <= top_k <= 100:
        raise ChoiceError(f"The number of top images per channel must be between 1 and 100 (got {top_k}).")
    if not 1 <= batch_size <= 1024:
        raise ChoiceError(f"The batch size must be between 1 and 1024 images (got {batch_size}).")
    infos = probe.default_layers if not layers else sorted({probe.layer(k).name: probe.layer(k) for k in layers}.values(), key=lambda i: i.index)
    image_shape = _image_shape(probe, image_size)
    if image_shape[-1] not in (1, 3):
        raise ChoiceError(f"The model expects images with {image_shape[-1]} colour channels; actviz feeds it greyscale (1) or colour (3) images only.")
    shapes = probe.layer_shapes(image_shape[0], image_shape[1])
    chosen = choose_preprocessing(probe, preprocessing)
    classes_out = class_count(np.zeros(_output_size(probe, image_shape)))
    names, label_map, label_note = align_labels(source, class_names, classes_out)
    cam = probe.table.last_convolution() if gradcam and cam_layer is None else (probe.table.resolve(cam_layer, among=probe.table.convolutions) if gradcam else None)
    elements = len(names) * int(np.prod(image_shape))
    layout = Layout(
        layers=tuple((info.name, tuple(int(d) for d in shapes[info.name])) for info in infos), classes=tuple(names),
        top_k=int(top_k), mistakes=int(mistakes), image_shape=image_shape,
        cam_layer=None if cam is None else cam.name, cam_shape=None if cam is None else tuple(int(d) for d in shapes[cam.name][:2]),
        class_images=len(names) <= MAX_CELL_CLASSES and elements <= MAX_CLASS_PIXELS,
    )
    probe.check_budget((batch_size, *image_shape), [])
    notes = tuple(n for n in (chosen.note, label_note) if n)
    return Plan(layout, chosen.method, label_map, int(batch_size), bool(gradcam), notes)


def align_labels(source: Source, class_names: Sequence[str] | None, count: int) -> tuple[list[str], np.ndarray | None, str]:
    """The model's class names, the model class of each data set label, and a note saying how.

    By name when the model's class names are known and every label is one of them; by number
    when every label is a class number; else by sorted order, the convention of
    ``keras.utils.image_dataset_from_directory`` (class 0 is the first folder name).
    """
    given = list(class_names or [])
    if not source.labelled or not source.label_names:
        return class_labels(count, given), None, ""
    labels = list(source.label_names)
    if len(labels) > count:
        raise DatasetError(
            f"The data set has {len(labels)} classes ({', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''}) but the model "
            f"answers with {count}. Use the data set the model was trained for, or read it without labels."
        )
    key = lambda text: " ".join(str(text).casefold().replace("_", " ").split())  # noqa: E731
    if given and all(key(name) in {key(g) for g in given} for name in labels):
        lookup = {key(g): i for i, g in enumerate(given)}
        return class_labels(count, given), np.array([lookup[key(n)] for n in labels], np.int64), ""
    if all(name.strip().isdigit() and int(name) < count for name in labels):
        return class_labels(count, given), np.array([int(n) for n in labels], np.int64), "Labels are read as class numbers."
    names = class_labels(count, given or labels)
    pairs = ", ".join(f"{label} = {names[i]!s}" if given else f"{label} = class {i}" for i, label in enumerate(labels[:6]))
    return names, np.arange(len(labels), dtype=np.int64), (
        f"Labels are matched to the model's classes in sorted order, as Keras does for class folders ({pairs}"
        f"{', ...' if len(labels) > 6 else ''})."
    )


def reduction_model(probe: Any, names: Sequence[str], image_shape: tuple, batch_size: int) -> Any:
    """A compiled function, float32 (batch_size, H, W, C) -> [probabilities (N, K), then per layer:
    stats float32 (N, 3, C) (spatial max, min, mean) and argmax int64 (N, C) (flat y * w + x)].

    One graph: the model's layers, each chosen layer's map reduced right after it is computed, so
    the maps are freed as the pass goes. The maximum and its position come from one
    ``max_pool_with_argmax`` over the whole grid (a plain ``argmax`` over the positions costs
    several times more on CPU). Built once per probe, layers, size and batch size.
    """

    def build():
        import keras
        import tensorflow as tf

        base = keras.Model(probe.symbolic_input, [probe.symbolic_predictions[0], *[probe.symbolic_output(n) for n in names]])

        @tf.function(input_signature=[tf.TensorSpec((batch_size, *image_shape), tf.float32)])
        def run(x):
            probabilities, *maps = base(x, training=False)
            outputs = [tf.reshape(tf.cast(probabilities, tf.float32), (batch_size, -1))]
            for feature in maps:
                feature = tf.cast(feature, tf.float32)
                height, width, channels = feature.shape[1:]
                window = [1, height, width, 1]
                peak, where = tf.nn.max_pool_with_argmax(feature, window, window, "VALID")  # where = (y * w + x) * C + c
                stats = [tf.reshape(peak, (batch_size, channels)), tf.reduce_min(feature, axis=[1, 2]), tf.reduce_mean(feature, axis=[1, 2])]
                outputs += [tf.stack(stats, axis=1), tf.reshape(where, (batch_size, channels)) // channels]
            return outputs

        return run

    return probe.cached_model(("dataset", tuple(names), tuple(image_shape), int(batch_size)), build)


class BatchRunner:
    """Runs one batch through the model and returns its partial summary (the local engine and
    every Ray worker use this same code)."""

    def __init__(self, probe: Any, plan: Plan):
        self.probe, self.plan = probe, plan
        self._run = reduction_model(probe, plan.layout.names, plan.layout.image_shape, plan.batch_size)

    def __call__(self, source: Source, indices: np.ndarray, loaded: list) -> Summary:
        """``loaded``: per index, (uint8 (H, W, C) pixels, None) or (None, reason it was skipped)."""
        layout, plan = self.plan.layout, self.plan
        skipped = tuple((int(i), source.paths[i], why) for i, (pixels, why) in zip(indices, loaded) if pixels is None)
        good = [(int(i), pixels) for i, (pixels, _) in zip(indices, loaded) if pixels is not None]
        if not good:
            return skipped_only(layout, skipped)
        index = np.array([i for i, _ in good], np.int64)
        pixels = np.zeros((plan.batch_size, *layout.image_shape), np.uint8)
        pixels[: len(good)] = np.stack([p for _, p in good])
        x = preprocess(pixels, plan.method)
        outputs = [np.asarray(o) for o in self._run(x)]
        count = len(good)
        probabilities, predicted = _per_class(outputs[0][:count])
        reductions = {name: (outputs[1 + 2 * i][:count], outputs[2 + 2 * i][:count]) for i, name in enumerate(layout.names)}
        heatmaps = self._heatmaps(x[:count]) if plan.gradcam else None
        return batch_summary(
            layout, index=index, label=plan.labels(source, index), reductions=reductions, probabilities=probabilities,
            predicted=predicted, heatmaps=heatmaps, pixels=pixels[:count] if layout.class_images else None, skipped=skipped,
        )

    def _heatmaps(self, x: np.ndarray) -> np.ndarray:
        """float32 (n, h, w) 0..1: Grad-CAM of each image's predicted class at the plan's layer."""
        from ..explain import grad_cam

        parts = [grad_cam(self.probe, x[i : i + CAM_CHUNK], layer=self.plan.layout.cam_layer).heatmap for i in range(0, len(x), CAM_CHUNK)]
        return np.concatenate(parts)


def load_pixels(source: Source, index: int, image_shape: tuple) -> tuple[np.ndarray | None, str | None]:
    """(uint8 (H, W, C), None) for a readable image; (None, the reason in words) otherwise."""
    try:
        return source.pixels(int(index), image_shape), None
    except ImageError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"The file cannot be read ({exc.strerror or exc})."


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
    convolution); ``image_size``: (H, W) for a model that takes any size (default 224 x 224);
    ``engine``: "local" or "ray" (``address``: an existing Ray cluster; ``actors``,
    ``cpus_per_actor``: see ``ray_engine.ray_partials``); ``workers``: decoding threads of the
    local engine; ``indices``: only these
    images (to split the work); ``checkpoint`` / ``resume``: see the module; ``progress``:
    called as ``progress(done, total)``, returning False stops the pass (``Cancelled``).

    >>> summary = summarize(None, None, top_k=9)       # the demo model over the demo digits  # doctest: +SKIP
    >>> summary.accuracy()                              # doctest: +SKIP
    0.954
    """
    from ..models import open_model

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
    if engine == "ray":
        from .ray_engine import ray_partials

        shipped = opened.model if model is opened else model  # a file is sent as bytes, a model in memory pickled
        stream = ray_partials(shipped, plan, source, remaining, trust=trust, address=address, class_names=names,
                              actors=actors, cpus_per_actor=cpus_per_actor)
    else:
        stream = local_partials(opened.probe, plan, source, remaining, workers=workers)
    summary = _merge_stream(stream, summary, covered, todo, identity, checkpoint=checkpoint, every=checkpoint_seconds, progress=progress)
    listed = tuple((-1, s.path, s.reason) for s in source.skipped) if indices is None else ()
    meta = {
        "model": opened.name, "model_digest": opened.loaded.digest, "source": source.spec(), "data": source.describe(),
        "fingerprint": source.fingerprint, "preprocessing": plan.method, "notes": list(plan.notes) + list(source.notes),
        "engine": engine, "batch_size": plan.batch_size, "labelled": source.labelled,
    }
    return replace(summary, images=tuple(source.paths), skipped=tuple(sorted(listed + summary.skipped, key=lambda s: (s[0], s[1]))), meta=meta)


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
    """Write the summary so far and the images covered to ``path``, replaced atomically."""
    import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, summary=np.frombuffer(summary.to_bytes(), np.uint8), covered=np.packbits(covered),
             size=np.array(len(covered)), identity=np.frombuffer(json.dumps(identity, sort_keys=True).encode(), np.uint8))
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, path)


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
    changed = [key for key in identity if saved.get(key) != identity[key]]
    if changed:
        words = {"model": "another model", "data": "other images or labels", "layout": "other layers or settings",
                 "preprocessing": "another preprocessing", "gradcam": "Grad-CAM set otherwise"}
        raise DatasetError(
            f"The saved progress in '{Path(path).parent}' was made with {' and '.join(words.get(k, k) for k in changed)}, "
            "so it cannot be continued. Run without --resume to start over (or use another output folder)."
        )
    return summary, covered


def _identity(opened: Any, source: Source, plan: Plan) -> dict:
    return {"model": opened.loaded.digest, "data": source.fingerprint, "layout": plan.layout.to_json(),
            "preprocessing": plan.method, "gradcam": plan.gradcam}


# --- small helpers -----------------------------------------------------------------------------


def _image_shape(probe: Any, image_size: tuple[int, int] | None) -> tuple[int, int, int]:
    height, width, channels = probe.input_shape
    if height and width:
        return int(height), int(width), int(channels)
    size = tuple(image_size or DEFAULT_SIZE)
    return int(height or size[0]), int(width or size[1]), int(channels)


def _output_size(probe: Any, image_shape: tuple) -> int:
    shape = probe.symbolic_predictions[0].shape[1:]
    if None in shape:
        raise ActvizError(f"The model's output has shape {tuple(shape)}; actviz reads a fixed number of class scores.")
    return int(np.prod(shape)) if shape else 1


def _per_class(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's first output (n, K) or (n, 1) -> (float64 (n, K) per class, int64 (n,) answer);
    a single sigmoid p is two classes (1 - p, p), class 1 when p >= 0.5 (see ``predictions``)."""
    values = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if values.shape[1] == 1:
        return np.concatenate([1.0 - values, values], axis=1), (values[:, 0] >= 0.5).astype(np.int64)
    return values, values.argmax(axis=1).astype(np.int64)
