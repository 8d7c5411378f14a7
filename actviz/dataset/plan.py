"""What is fixed before a pass over a data set, and what one batch of images becomes.

``make_plan`` works out a ``Plan`` before any work: the layers, the image size, the
preprocessing, how the data set's labels map to the model's classes, and the memory of one
batch. ``BatchRunner`` turns one batch into a partial ``Summary``; the local engine
(``engine``) and every Ray worker (``ray_engine``) run this same code.

The feature maps never reach numpy: ``reduction_model`` is one compiled TensorFlow graph whose
outputs are, per chosen layer, each channel's spatial maximum, minimum and mean (float32
(N, 3, C)) and the position of the maximum (int (N, C)), computed right after the layer, plus
the model's probabilities. A batch costs the model's own forward pass and three reductions over
maps it computes anyway (about a tenth more for VGG16's 17 layers at 300 x 300).

Batches are always ``batch_size`` images (the last one padded with blank images whose results
are dropped), so the compiled function is traced once and every image is computed by the same
kernels whichever batch it lands in: splitting the work differently gives the same top-k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ActvizError, ChoiceError, ImageError
from ..core.predictions import class_count, class_labels
from ..inputs.preprocessing import choose_preprocessing, preprocess
from .sources import DatasetError, Source
from .summary import MAX_CELL_CLASSES, Layout, Summary, batch_summary, skipped_only

#: Image size for models that take any size (all images of a pass share one size).
DEFAULT_SIZE = (224, 224)
#: Most elements of the per-class average images (K x H x W x C) kept in a summary.
MAX_CLASS_PIXELS = 8_000_000
#: Images per Grad-CAM pass (its backward pass keeps every layer's output for the batch).
CAM_CHUNK = 8


@dataclass(frozen=True)
class Plan:
    """Everything fixed before a pass (picklable: the Ray workers get it).

    ``layout``: what the summary holds; ``scaling``: the preprocessing; ``label_map``: int64
    (L,) the model class of each of the data set's label names; ``batch_size``;
    ``gradcam``: whether Grad-CAM runs; ``notes``: plain words for the user.
    """

    layout: Layout
    scaling: str
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
    return Plan(layout, chosen.scaling, label_map, int(batch_size), bool(gradcam), notes)


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
        """float32 (n, h, w) 0..1: Grad-CAM of each image's predicted class at the plan's layer."""
        from ..explainers.explain import explain

        layer = self.plan.layout.cam_layer
        parts = [explain(self.probe, x[i : i + CAM_CHUNK], method="gradcam", layer=layer).heatmap for i in range(0, len(x), CAM_CHUNK)]
        return np.concatenate(parts)


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
