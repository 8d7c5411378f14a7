"""What each filter responds to: input patterns that excite it, and the first layer's kernels.

Two ways to make a pattern (``find_patterns(method=...)``):

- ``"robust"`` (the default): feature visualisation as Lucid does it, in
  ``featurevis``: a smooth Fourier-parameterised image kept in the valid pixel
  range, shifted, scaled and turned a little at every step. Readable pictures.
- ``"plain"``: gradient ascent on pixels (the second half of the book chapter the
  notebook comes from): start from a grey image with a little noise and change
  it, step by step, to make the objective as large as possible; pixels are kept
  inside the model's input range. Shown stretched in contrast, as in the book.

All requested patterns are optimised together as one batch, so a step costs one
forward and one backward pass whatever their number. Either way, a target whose
objective has no gradient at any step (a dead filter) is reported in
``Patterns.dead`` and drawn flat grey instead of as noise.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from ..errors import ChoiceError, LayerNotFoundError
from .robust import (
    DYNAMIC_SIZE, METHODS, OBJECTIVES, ROBUST_STEPS, Patterns, check_steps, check_targets, finish_patterns,
    fourier_pixels, input_mapping, pattern_size, pixels_of, robust_patterns, score_function, spectrum_scale, tick,
    wake_proposal, wake_up,
)
from ..core.probe import Probe

__all__ = [
    "DYNAMIC_SIZE", "METHODS", "OBJECTIVES", "PLAIN_STEPS", "ROBUST_STEPS", "Patterns",
    "filter_patterns", "find_patterns", "first_layer_kernels", "plain_patterns",
]

#: Steps of the plain method unless asked otherwise.
PLAIN_STEPS = 30


def find_patterns(
    probe: Probe, layer: str | None, targets: Sequence[int], *, method: str = "robust", objective: str = "channel",
    steps: int | None = None, seed: int = 0, preprocessing: str | None = None,
    value_range: tuple[float, float] | None = None, class_names: Sequence[str] | None = None,
    progress: Callable[[int, int], bool | None] | None = None, **options,
) -> Patterns:
    """Patterns that excite ``targets`` (channels of ``layer``, or classes), made by ``method``.

    ``method``: "robust" or "plain"; ``objective``: "channel", "neuron" or
    "class"; ``steps``: default 128 (robust) or 30 (plain); ``preprocessing``:
    the model's pixel scaling (a key of ``PREPROCESSING``, preferred) or
    ``value_range``: its input range (default 0..1). ``options`` go to
    ``featurevis.robust_patterns`` (shift, scale, rotate, total_variation, l2,
    ...) or ``plain_patterns`` (step_size). ``progress(step, steps)`` after each
    step; False stops with ``Cancelled``. Deterministic for ``seed``.

    >>> patterns = find_patterns(probe, "block2_conv1", [0, 1, 2], preprocessing="rescale")  # doctest: +SKIP
    >>> patterns.images.shape, patterns.dead, patterns.captions()                          # doctest: +SKIP
    """
    if method not in METHODS:
        raise ChoiceError(f"Unknown method '{method}'. Choose one of: {', '.join(METHODS)}.")
    make = robust_patterns if method == "robust" else plain_patterns
    return make(
        probe, layer, targets, objective=objective,
        steps=steps if steps is not None else (ROBUST_STEPS if method == "robust" else PLAIN_STEPS),
        seed=seed, preprocessing=preprocessing, value_range=value_range, class_names=class_names, progress=progress, **options,
    )


def filter_patterns(
    probe: Probe, layer: str | None, channels: Sequence[int], *, method: str = "robust", objective: str = "channel",
    steps: int | None = None, seed: int = 0, preprocessing: str | None = None,
    value_range: tuple[float, float] | None = None, progress: Callable[[int, int], bool | None] | None = None, **options,
) -> np.ndarray:
    """The pictures of ``find_patterns`` only: uint8 (N, H, W, C) (a dead target is flat grey)."""
    return find_patterns(
        probe, layer, channels, method=method, objective=objective, steps=steps, seed=seed,
        preprocessing=preprocessing, value_range=value_range, progress=progress, **options,
    ).images


def plain_patterns(
    probe: Probe, layer: str | None, targets: Sequence[int], *, objective: str = "channel", steps: int = PLAIN_STEPS,
    step_size: float = 10.0, seed: int = 0, preprocessing: str | None = None,
    value_range: tuple[float, float] | None = None, size: int | None = None, class_names: Sequence[str] | None = None,
    progress: Callable[[int, int], bool | None] | None = None,
) -> Patterns:
    """Plain gradient ascent on pixels: a ``Patterns`` whose pictures are stretched for viewing.

    Starts from grey with 10% noise; each step moves every pixel by
    ``step_size`` levels (of 255) along the normalised gradient, then clips it
    to the model's input range (so the pattern stays an image the model could
    be given). Arguments as ``featurevis.robust_patterns``.
    """
    import tensorflow as tf

    name, count, targets = check_targets(probe, layer, targets, objective)
    check_steps(steps)
    height, width, channels = pattern_size(probe, size)
    probe.check_budget((len(targets), height, width, channels), [name] if name else [])
    started = time.perf_counter()
    matrix, offset = input_mapping(channels, preprocessing=preprocessing, value_range=value_range)
    rngs = [np.random.default_rng([seed, t]) for t in targets]
    start = np.stack([0.5 + 0.1 * (rng.random((height, width, channels)) - 0.5) for rng in rngs]).astype(np.float32)
    constants = {
        "select": tf.one_hot(targets, count, dtype=tf.float32),
        "low": tf.constant(offset + np.minimum(matrix, 0).sum(axis=0)),  # the inputs pixels in 0..1 can give
        "high": tf.constant(offset + np.maximum(matrix, 0).sum(axis=0)),
        "pace": tf.constant(step_size / 255.0 * float(np.abs(matrix).sum(axis=0).mean()), tf.float32),
    }

    def propose(i: int, k: int) -> np.ndarray:  # smooth random pictures, more contrast, dark or bright ground
        scale = spectrum_scale(height, width)
        spectrum = tf.constant(wake_proposal(rngs[i], (height, width, channels), k, scale)[np.newaxis])
        pixels = fourier_pixels(spectrum, tf.constant(scale), np.eye(channels, dtype=np.float32), (height, width))
        return pixels.numpy()[0] @ matrix + offset

    first, signal = wake_up(score_function(probe, name, objective), tf.identity, start @ matrix + offset, constants["select"], propose)
    images = tf.Variable(first)
    step_function = _plain_step(probe, name, objective)
    for step in range(steps):
        signal |= step_function(images, constants).numpy()
        tick(progress, step + 1, steps)
    return finish_patterns(
        probe, name, targets, objective=objective, method="plain", steps=steps, seed=seed,
        pixels=pixels_of(images.numpy(), matrix, offset), start_pixels=pixels_of(first, matrix, offset),
        matrix=matrix, offset=offset, signal=signal, started=started, class_names=class_names,
        images=_deprocess(images.numpy()),
    )


def _plain_step(probe: Probe, layer: str | None, objective: str) -> Callable:
    """One compiled ascent step for this probe, layer and objective (kept in the probe's cache).
    Returns bool (N,): where the objective had a gradient."""

    def build():
        import tensorflow as tf

        scores_of = score_function(probe, layer, objective)

        @tf.function(reduce_retracing=True, autograph=False)
        def step(images, constants):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(scores_of(images) * constants["select"])
            grads = tape.gradient(loss, images)
            norms = tf.sqrt(tf.reduce_mean(tf.square(grads), axis=(1, 2, 3), keepdims=True)) + 1e-8
            # a normalised step: every pattern moves at the same pace whatever its channel's scale;
            # clipped so that the pattern stays an input the model could be given
            images.assign(tf.clip_by_value(images + constants["pace"] * grads / norms, constants["low"], constants["high"]))
            return tf.reduce_any(tf.not_equal(grads, 0.0), axis=(1, 2, 3))
        return step

    return probe.cached_model(("featurevis", "plain", layer, objective), build)


def _deprocess(images: np.ndarray) -> np.ndarray:
    """Centre and stretch each image for viewing: float (N, H, W, C) -> uint8 (as in the book)."""
    x = images - images.mean(axis=(1, 2, 3), keepdims=True)
    x /= x.std(axis=(1, 2, 3), keepdims=True) + 1e-5
    x = x * 0.15 + 0.5
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def first_layer_kernels(probe: Probe) -> tuple[str, np.ndarray]:
    """The first convolution layer's filters as small images: (layer name, uint8 (N, kh, kw, C)).

    C is 3 (RGB) for a three-channel input, 1 otherwise (the mean over input
    channels). Each filter is stretched to 0..255 on its own, mid-grey = 0 weight
    when the filter has weights of both signs.
    """
    convs = probe.table.convolutions
    if not convs:
        raise LayerNotFoundError("This model has no convolution layer, so there are no filters to show.")
    info = convs[0]
    kernel = np.asarray(probe.layer_object(info.name).get_weights()[0], dtype=np.float32)  # (kh, kw, in, out)
    if kernel.ndim != 4:
        raise LayerNotFoundError(f"The first convolution layer '{info.name}' has no 2-D kernels to draw.")
    filters = np.moveaxis(kernel, -1, 0)  # (out, kh, kw, in)
    if filters.shape[-1] != 3:
        filters = filters.mean(axis=-1, keepdims=True)
    reach = np.abs(filters).max(axis=(1, 2, 3), keepdims=True)
    reach[reach == 0] = 1.0
    return info.name, ((filters / reach) * 127.5 + 127.5).round().clip(0, 255).astype(np.uint8)
