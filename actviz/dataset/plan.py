"""What is fixed before a pass over a data set, and what one batch of images becomes.

``make_plan`` works out a ``Plan`` before any work: the layers, the image size, the
preprocessing, how the data set's labels map to the model's classes, and the memory of one
batch. ``BatchRunner`` turns one batch into a partial ``Summary``; the local engine
(``engine``) and every Ray worker (``ray_engine``) run this same code.

The feature maps never reach numpy: ``reduction_model`` is one compiled TensorFlow graph whose
outputs are, per chosen layer, each channel's spatial maximum, minimum and mean (float32
(N, 3, C)) and the position of the maximum (int (N, C)), computed right after the layer, plus
the model's probabilities. The reductions are poolings over the whole grid (oneDNN's, vectorised
across channels): on VGG16's 17 layers at 300 x 300 they add about 0.3 of the bare forward pass in
float32, where reductions along the grid's axes added 0.45. A model run in bfloat16 (a twin made
by ``core.precision``) is reduced in bfloat16; the outputs are float32 either way.

The batch is as large as the job's memory allows (``Probe.max_bytes``: see
``core.batches``), at most the size asked for and the number of images to do; a pass that cannot
fit one image is refused in words before it starts. Batches are all of that size (the last one
padded with blank images whose results are dropped), so the compiled function is traced once;
splitting the work differently gives the same top-k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ActvizError, BudgetError, ChoiceError, ImageError
from ..core.batches import largest_map_bytes, pass_bytes
from ..core.passes import flops, seconds
from ..core.predictions import class_count, class_labels
from ..draw.rounding import for_people
from ..inputs.preprocessing import choose_preprocessing, preprocess
from .sources import DatasetError, Source
from .summary import MAX_CELL_CLASSES, Layout, Summary, batch_summary, skipped_only

#: Image size for models that take any size (all images of a pass share one size).
DEFAULT_SIZE = (224, 224)
#: Most elements of the per-class average images (K x H x W x C) kept in a summary.
MAX_CLASS_PIXELS = 8_000_000
#: Seconds the poolings of the reduction pass take per MB of maps (counted in float32), on the
#: machine it was measured on: 0.038 s an image for VGG16's 108 MB at 300 x 300 in float32, 0.032 s
#: in bfloat16 (bandwidth, not arithmetic).
REDUCTION_SECONDS_PER_MB = 0.00033
#: Grad-CAM's first pass calls the Keras model eagerly: about 1.15 compiled passes.
EAGER_COST = 1.15


@dataclass(frozen=True)
class Plan:
    """Everything fixed before a pass (picklable: the Ray workers get it).

    ``layout``: what the summary holds; ``scaling``: the preprocessing; ``label_map``: int64
    (L,) the model class of each of the data set's label names; ``batch_size``: images a pass,
    as many as the memory allows; ``gradcam``: whether Grad-CAM runs; ``notes``: plain words
    for the user; ``image_bytes``: the memory one image takes in a pass.
    """

    layout: Layout
    scaling: str
    label_map: np.ndarray | None
    batch_size: int
    gradcam: bool
    notes: tuple = ()
    image_bytes: int = 0

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
    """Work out a pass before doing it; raises ``ActvizError`` for impossible settings and
    ``BudgetError`` for a pass that cannot fit one image in ``probe.max_bytes``. ``batch_size``:
    the most images a pass (fewer when the memory is short)."""
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
    cam = None if not gradcam else probe.table.default_cam_layer()[0] if cam_layer is None else probe.table.resolve(cam_layer, among=probe.table.cam_layers)
    elements = len(names) * int(np.prod(image_shape))
    layout = Layout(
        layers=tuple((info.name, tuple(int(d) for d in shapes[info.name])) for info in infos), classes=tuple(names),
        top_k=int(top_k), mistakes=int(mistakes), image_shape=image_shape,
        cam_layer=None if cam is None else cam.name, cam_shape=None if cam is None else tuple(int(d) for d in shapes[cam.name][:2]),
        class_images=len(names) <= MAX_CELL_CLASSES and elements <= MAX_CLASS_PIXELS,
    )
    each = image_bytes(probe, image_shape, cam_layer=layout.cam_layer)
    notes = tuple(n for n in (chosen.note, label_note) if n)
    return Plan(layout, chosen.scaling, label_map, fitting_batch(probe, image_shape, each, batch_size), bool(gradcam), notes, each)


def image_bytes(probe: Any, image_shape: tuple, *, cam_layer: str | None = None) -> int:
    """Memory one image takes in a pass over a data set, in bytes: the reduction pass (a forward
    pass, plus the negated copy of a map its minimum is pooled from) and its pixels, or Grad-CAM's
    pass when that is larger (it runs after the reductions, on the same images)."""
    pixels = 5 * int(np.prod(image_shape))  # uint8 as read, float32 as the model takes it
    reduction = pass_bytes(probe, image_shape) + largest_map_bytes(probe, image_shape)
    cam = 0 if cam_layer is None else pass_bytes(probe, image_shape, keep=[cam_layer])
    return max(reduction, cam) + pixels


def fitting_batch(probe: Any, image_shape: tuple, each: int, requested: int) -> int:
    """Images a pass: ``requested`` lowered to what ``probe.max_bytes`` holds at ``each`` bytes an
    image; ``BudgetError`` in words when not even one fits."""
    fits = probe.max_bytes // max(each, 1)
    if fits < 1:
        raise BudgetError(
            f"Running the model over images of {image_shape[0]} x {image_shape[1]} pixels takes about "
            f"{for_people(each / 1024**2)} MB of memory an image, more than the {for_people(probe.max_bytes / 1024**2)} MB this run may "
            "use. Nothing was run. Give the run more memory, choose fewer layers or a smaller image size."
        )
    return int(min(requested, fits))


def plan_seconds(probe: Any, plan: Plan, images: int) -> float:
    """Seconds a pass of ``plan`` over ``images`` images takes on this machine: the model's forward
    pass (its speed measured once, ``core.passes.pass_seconds``), the poolings over the maps, and
    with Grad-CAM a second pass and the gradient through the layers after its layer."""
    shape = plan.layout.image_shape
    maps = sum(4 * int(np.prod(layer_shape)) for _, layer_shape in plan.layout.layers) / 1024**2
    forward, backward = 1.0, 0.0
    if plan.gradcam:
        forward += EAGER_COST
        backward = flops(probe, shape, after=plan.layout.cam_layer) / max(flops(probe, shape), 1.0)
    each = seconds(probe, shape, forward=forward, backward=backward, stacked=plan.batch_size > 1)
    return images * (each + maps * REDUCTION_SECONDS_PER_MB)


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
    the maps are freed as the pass goes. Each statistic is one pooling over the whole grid: the
    maximum and its position from ``max_pool_with_argmax`` (a plain ``argmax`` over the positions
    costs several times more on CPU), the minimum as the maximum of the negated map, the mean as
    an average pooling. Built once per probe, layers, size and batch size.
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
                height, width, channels = feature.shape[1:]
                window = [1, height, width, 1]
                peak, where = tf.nn.max_pool_with_argmax(feature, window, window, "VALID")  # where = (y * w + x) * C + c
                low = -tf.nn.max_pool2d(-feature, window, window, "VALID")
                mean = tf.nn.avg_pool2d(feature, window, window, "VALID")
                stats = [tf.reshape(tf.cast(value, tf.float32), (batch_size, channels)) for value in (peak, low, mean)]
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
        x = preprocess(pixels, plan.scaling)
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
        """float32 (n, h, w) 0..1: Grad-CAM of each image's predicted class at the plan's layer (its
        passes sized to the probe's memory, as every explanation's)."""
        from ..explainers.explain import explain

        return explain(self.probe, x, method="gradcam", layer=self.plan.layout.cam_layer).heatmap


def load_pixels(source: Source, index: int, image_shape: tuple) -> tuple[np.ndarray | None, str | None]:
    """(uint8 (H, W, C), None) for a readable image; (None, the reason in words) otherwise."""
    try:
        return source.pixels(int(index), image_shape), None
    except ImageError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"The file cannot be read ({exc.strerror or exc})."


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
