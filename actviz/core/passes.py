"""Compiled passes for the work that runs the model many times: the class scores of a stack of
images, and their gradients with respect to the pixels.

Each is a ``tf.function`` over the probe's view, built once per probe and kept
in its bounded cache. A compiled pass skips Python's layer-by-layer dispatch:
on VGG16 at 300 x 300 on two CPU cores, about 15% less time per image than
calling the Keras model eagerly, which adds up over the hundreds of passes of
Score-CAM, occlusion, SmoothGrad, Integrated Gradients and the checks. Shapes
are relaxed (``reduce_retracing``), so stacks of different sizes share one graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .probe import Probe
from .target import Target, predicted_classes


def logits_and_outputs(probe: Probe, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logits float32 (N, K) and the model's first output (N, ...) of a batch (N, H, W, C), in
    passes that fit the memory budget."""
    from .batches import batch_size, slices

    model = probe.logits_model()
    size = batch_size(probe, batch.shape[1:], requested=len(batch))
    parts = [[np.asarray(t) for t in model(batch[part], training=False)] for part in slices(len(batch), size)]
    return np.concatenate([p[0] for p in parts]).reshape(len(batch), -1), np.concatenate([p[1] for p in parts])


def class_logits(probe: Probe, inputs: np.ndarray) -> np.ndarray:
    """float32 (M, K): the class scores (logits) of a stack of model inputs float32 (M, H, W, C)."""
    return np.asarray(_logits_function(probe)(np.asarray(inputs, dtype=np.float32))).reshape(len(inputs), -1)


def input_gradients(probe: Probe, inputs: np.ndarray, target: Target) -> np.ndarray:
    """float32 (M, H, W, C): d(class score)/d(input) for a stack of inputs and their ``Target``."""
    return gradient_pass(probe, inputs, target.classes)[0]


def gradient_pass(probe: Probe, inputs: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, ...]:
    """One compiled forward and backward pass over a stack of inputs float32 (M, H, W, C):
    (gradients float32 (M, H, W, C), logits (M, K), the model's first output (M, ...), classes int64 (M,)).

    ``classes``: int (M,), each input's class, or -1 for the class the model predicts for it
    (worked out in the same pass, so a saliency map takes one pass, not two).
    """
    found = _gradient_function(probe)(np.asarray(inputs, dtype=np.float32), np.asarray(classes, dtype=np.int64))
    gradients, logits, outputs, chosen = (np.asarray(t) for t in found)
    return gradients, logits.reshape(len(inputs), -1), outputs, chosen


def _logits_function(probe: Probe) -> Any:
    import tensorflow as tf

    def build() -> Any:
        model = probe.logits_model()
        return tf.function(lambda x: model(x, training=False)[0], reduce_retracing=True)

    return probe.cached_model(("compiled", "logits"), build)


def _gradient_function(probe: Probe) -> Any:
    import tensorflow as tf

    def build() -> Any:
        model = probe.logits_model()

        def gradient(x, chosen):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                logits, outputs = model(x, training=False)
                chosen = tf.where(chosen < 0, predicted_classes(outputs), chosen)
                total = tf.reduce_sum(Target(chosen)(logits))
            return tape.gradient(total, x), logits, outputs, chosen

        return tf.function(gradient, reduce_retracing=True)

    return probe.cached_model(("compiled", "gradient"), build)


def ablated_logits(probe: Probe, name: str, feature: np.ndarray, channels: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
    """float32 (B, K): the class scores when each of ``channels`` int (B,) of one image's map of layer
    ``name`` (float32 (h, w, C)) is set to zero in turn, through the part of the network after the
    layer (``Probe.head_model``). The B copies are made inside the graph, so the map crosses from
    numpy once. ``image``: float32 (H, W, C), for a head that also reads the image."""
    import tensorflow as tf

    def build() -> Any:
        head, takes_image = probe.head_model(name)

        def run(feature, channels, image):
            depth = tf.shape(feature)[-1]
            keep = 1.0 - tf.one_hot(channels, depth, dtype=feature.dtype)
            copies = feature[None] * keep[:, None, None, :]
            if takes_image:
                images = tf.repeat(image[None], tf.shape(channels)[0], axis=0)
                return head([images, copies], training=False)[0]
            return head(copies, training=False)[0]

        return tf.function(run, reduce_retracing=True)

    function = probe.cached_model(("compiled", "ablated", name), build)
    image = np.zeros((1, 1, 1), np.float32) if image is None else np.asarray(image, np.float32)
    out = function(np.asarray(feature, np.float32), np.asarray(channels, np.int32), image)
    return np.asarray(out).reshape(len(channels), -1)
