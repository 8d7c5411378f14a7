"""Compiled passes for the work that runs the model many times: the class scores of a stack of
images, and their gradients with respect to the pixels; and what a pass costs on this machine.

Each is a ``tf.function`` over the probe's view, built once per probe and kept
in its bounded cache. A compiled pass skips Python's layer-by-layer dispatch:
on VGG16 at 300 x 300 on two CPU cores, about 15% less time per image than
calling the Keras model eagerly, which adds up over the hundreds of passes of
Score-CAM, occlusion, SmoothGrad, Integrated Gradients and the checks. Shapes
are relaxed (``reduce_retracing``), so stacks of different sizes share one graph.

Long work says how long it will take before it starts: ``pass_seconds`` times one compiled
class-score pass of the model on this machine (once per probe and input size), ``flops`` counts
the multiply-adds of the layers, so that a part of the network (the layers after or up to one)
is priced as its share of the whole, and ``seconds`` adds up forward and backward passes.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

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


# --- what a pass costs ----------------------------------------------------------------------------

#: A forward and backward pass (the gradient with respect to the input) as a share of a forward
#: pass alone: measured 1.8 to 2.4 on VGG16 at 300 x 300, in float32 and in bfloat16.
BACKWARD_COST = 2.2
#: Stack of inputs the speed of stacked passes is measured on (on VGG16 at 300 x 300, stacks of 4
#: ran 1.6 times faster an input than single inputs; the long jobs stack inputs).
TIMED_STACK = 4


def flops(probe: Probe, shape: Sequence[int], *, after: str | None = None, upto: str | None = None) -> float:
    """Floating-point operations of one input of ``shape`` (H, W, C) through the model's layers with
    weights (2 x positions x kernel size: exact for convolutions and dense layers); only the layers
    after the layer ``after``, or up to and with the layer ``upto``, when given."""
    shapes = probe.layer_shapes(int(shape[0]), int(shape[1]))
    first = -1 if after is None else probe.table.resolve(after, among=probe.table.rows).index
    last = math.inf if upto is None else probe.table.resolve(upto, among=probe.table.rows).index
    total = 0.0
    for info in probe.table:
        if info.container or info.params == 0 or not first < info.index <= last or info.name not in shapes:
            continue
        kernels = [w for w in probe.layer_object(info.name).weights if len(w.shape) >= 2]
        positions = math.prod(d or 1 for d in shapes[info.name][:-1])
        total += 2.0 * positions * sum(math.prod(int(d) for d in w.shape) for w in kernels)
    return total


def pass_seconds(probe: Probe, shape: Sequence[int], *, stacked: bool = True) -> float:
    """Seconds one input of ``shape`` (H, W, C) takes in a compiled class-score pass on this machine:
    in stacks of ``TIMED_STACK`` (as far as the memory allows), or alone (``stacked=False``).
    Measured once per probe, size and way: the pass is compiled for one input and for the stack
    (the second size traces again, into the graph for any stack), then the stack is timed."""
    from .batches import batch_size

    def measure() -> float:
        count = batch_size(probe, shape, requested=TIMED_STACK) if stacked else 1
        inputs = np.random.default_rng(0).random((count, *shape), dtype=np.float32)
        class_logits(probe, inputs[:1])
        if count > 1:
            class_logits(probe, inputs)  # not timed: a second size traces once more
        start = time.perf_counter()
        class_logits(probe, inputs)
        return (time.perf_counter() - start) / count

    return probe.cached_model(("compiled", "seconds", tuple(int(d) for d in shape), bool(stacked)), measure)


def seconds(probe: Probe, shape: Sequence[int], *, forward: float = 0.0, backward: float = 0.0, stacked: bool = True) -> float:
    """Seconds of ``forward`` forward passes and ``backward`` forward-and-backward passes of inputs of
    ``shape`` (H, W, C) through the whole model on this machine, in stacks or one input at a time
    (a part of the network counts as its share of ``flops``)."""
    return pass_seconds(probe, shape, stacked=stacked) * (forward + BACKWARD_COST * backward)


def duration_words(seconds_taken: float) -> str:
    """A duration as people say it: "under a second", "about 40 seconds", "about 4 minutes", "about 2 hours".

    >>> duration_words(0.3), duration_words(42), duration_words(61), duration_words(250), duration_words(9000)
    ('under a second', 'about 40 seconds', 'about a minute', 'about 4 minutes', 'about 2.5 hours')
    """
    if seconds_taken < 1:
        return "under a second"
    if seconds_taken < 55:
        value = round(seconds_taken / 5) * 5 if seconds_taken >= 10 else round(seconds_taken)
        return f"about {value} second{'s' if value != 1 else ''}"
    if seconds_taken < 90:
        return "about a minute"
    if seconds_taken < 5400:
        return f"about {round(seconds_taken / 60)} minutes"
    return f"about {seconds_taken / 3600:.1f} hours".replace(".0 hours", " hours")
