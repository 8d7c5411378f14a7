"""What each filter responds to: input patterns found by gradient ascent, and first-layer kernels.

Gradient ascent (the second half of the book chapter the notebook comes
from): start from a grey image with a little noise and change it, step by step,
to make one channel's mean activation as large as possible. All requested
channels are optimised together as one batch, so a step costs one forward and
one backward pass whatever their number.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import Cancelled, ChannelNotFoundError, LayerNotFoundError
from .probe import Probe

#: Side of the pattern images for models that accept any input size.
DYNAMIC_SIZE = 128


def filter_patterns(
    probe: Probe, layer: str, channels: Sequence[int], *, steps: int = 30, step_size: float = 10.0,
    seed: int = 0, value_range: tuple[float, float] = (0.0, 1.0),
    progress: Callable[[int, int], bool | None] | None = None,
) -> np.ndarray:
    """Images that excite each of ``channels`` of ``layer``: uint8 (N, H, W, C).

    ``value_range``: the model's input range after preprocessing (0..1 for the
    notebook's /255), used for the starting image. ``progress(step, steps)`` is
    called after each step; if it returns False, ``Cancelled`` is raised.
    Deterministic for a given ``seed``.
    """
    import tensorflow as tf

    info = probe.table.resolve(layer, among=probe.table.convolutions)
    count = info.output_shape[-1]
    bad = [c for c in channels if not 0 <= int(c) < count]
    if bad or not channels:
        raise ChannelNotFoundError(f"Layer '{info.name}' has channels 0 to {count - 1}; asked for {list(channels) or 'none'}.")
    model = probe.feature_model(info.name)
    height, width, depth = (d or DYNAMIC_SIZE for d in probe.input_shape)
    low, high = value_range
    rng = np.random.default_rng(seed)
    start = (low + high) / 2 + (high - low) * 0.1 * (rng.random((len(channels), height, width, depth)) - 0.5)
    images = tf.Variable(start.astype(np.float32))
    select = tf.one_hot(np.asarray(channels, dtype=np.int32), count, dtype=tf.float32)  # (N, C)
    scale = step_size * (high - low) / 255.0
    for step in range(steps):
        with tf.GradientTape() as tape:
            features = model(images, training=False)
            # each image's own channel, averaged over the map (borders excluded, as in the book)
            core = features[:, 2:-2, 2:-2, :] if features.shape[1] > 4 and features.shape[2] > 4 else features
            loss = tf.reduce_sum(tf.reduce_mean(core, axis=(1, 2)) * select)
        grads = tape.gradient(loss, images)
        norms = tf.sqrt(tf.reduce_mean(tf.square(grads), axis=(1, 2, 3), keepdims=True)) + 1e-8
        images.assign_add(scale * grads / norms)  # normalised step: every channel moves at the same pace
        if progress is not None and progress(step + 1, steps) is False:
            raise Cancelled("Stopped: another choice was made while the patterns were being computed.")
    return _deprocess(images.numpy())


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
