"""Making the patterns (lucent's ``render``): the optimisation loops, robust and plain, the
wake-up of targets that give no gradient, the finishing of a ``Patterns``, and progress.

- **Robust** (``robust_patterns``): Adam on the Fourier parameters of ``param``, the picture
  warped at random by ``transforms`` at every step. Optional total-variation and L2 penalties
  smooth the pattern further, each weighed against the pattern's own objective.
- **Plain** (``plain_patterns``): gradient ascent on the pixels, each step clipped into the
  model's input range; shown stretched in contrast, as in the book the notebook comes from.

The requested patterns are optimised together, as many at once as the job's memory holds
(``Probe.max_bytes``; the rest in further groups): one forward and one backward pass per step
for the group whatever its size. Each pattern's start and random transforms come from ``(seed,
target)``, so a channel's pattern does not depend on which other channels are asked for with it,
nor on the group it lands in. ``pattern_seconds`` says how long it will take before it starts.

A pattern that cannot be made is reported, not drawn as noise: when the objective's gradient with
respect to the image is exactly zero at every step (typically a ReLU channel that stays at zero
for every input tried, a "dead" filter), ``Patterns.dead`` is True and its picture is flat grey.
Before giving up on a target, ``wake_up`` tries the other starts of ``param.WAKE_STARTS``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from ..core.batches import batch_size, slices
from ..core.passes import flops, seconds
from ..core.probe import Probe
from ..errors import Cancelled, ChoiceError
from .objectives import check_targets, score_function, target_activations
from .param import (
    WAKE_STARTS, colour_matrix, fourier_pixels, input_mapping, pixels_of, spectrum_scale, start_spectrum, wake_proposal,
)
from .result import Patterns
from .transforms import random_transforms, transform_images

#: Side of the pattern images for models that accept any input size.
DYNAMIC_SIZE = 128
#: Steps of the robust method unless asked otherwise.
ROBUST_STEPS = 128
#: Steps of the plain method unless asked otherwise.
PLAIN_STEPS = 30


def pattern_size(probe: Probe, size: int | None = None) -> tuple[int, int, int]:
    """(H, W, C) of the patterns: the model's input size, or ``size`` (default 128) where it takes any."""
    height, width, channels = probe.input_shape
    side = int(size or DYNAMIC_SIZE)
    return int(height or side), int(width or side), int(channels)


def check_steps(steps: int) -> None:
    """A ``ChoiceError`` unless 1 <= steps <= 10,000."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 10_000:
        raise ChoiceError(f"The number of steps must be a whole number from 1 to 10000 (got {steps}).")


def tick(progress: Callable[[int, int], bool | None] | None, step: int, steps: int) -> None:
    """Report a finished step; raise ``Cancelled`` when ``progress`` answers False."""
    if progress is not None and progress(step, steps) is False:
        raise Cancelled("Stopped: another choice was made while the patterns were being computed.")


def group_size(probe: Probe, shape: tuple[int, int, int], count: int) -> int:
    """Patterns optimised at once: as many of ``count`` as a forward and backward pass of the model
    at ``shape`` (H, W, C) holds in ``probe.max_bytes``; ``BudgetError`` in words when not one does."""
    return batch_size(probe, shape, backward=True, requested=count)


def pattern_seconds(probe: Probe, layer: str | None, count: int, *, steps: int, size: int | None = None) -> float:
    """Seconds making ``count`` patterns of ``steps`` steps takes on this machine: each step a forward
    and backward pass of every pattern through the model up to ``layer`` (the whole model for a
    class), priced as that part's share of the model's operations (``core.passes``)."""
    shape = pattern_size(probe, size)
    share = 1.0 if layer is None else flops(probe, shape, upto=layer) / max(flops(probe, shape), 1.0)
    return count * seconds(probe, shape, backward=(steps + len(WAKE_STARTS) + 2) * share, stacked=count > 1)


def _parts(count: int, size: int, steps: int, progress: Callable[[int, int], bool | None] | None):
    """(slice of the targets, its progress) for each group of at most ``size`` of ``count`` targets;
    the progress runs over every group's steps in turn."""
    total = steps * math.ceil(count / size)
    for number, part in enumerate(slices(count, size)):
        yield part, None if progress is None else (lambda step, _, first=number * steps: progress(first + step, total))


# --- the robust method -----------------------------------------------------------------------


def robust_patterns(
    probe: Probe, layer: str | None, targets: Sequence[int], *, objective: str = "channel", steps: int = ROBUST_STEPS,
    seed: int = 0, preprocessing: str | None = None, value_range: tuple[float, float] | None = None,
    learning_rate: float | None = None, shift: float | None = None, scale: tuple[float, float] = (0.9, 1.1), rotate: float = 10.0,
    total_variation: float = 0.0, l2: float = 3.0, decorrelate: bool | None = None, decay: float = 1.5,
    size: int | None = None, class_names: Sequence[str] | None = None,
    progress: Callable[[int, int], bool | None] | None = None,
) -> Patterns:
    """Patterns that excite each target, made robustly (``param``, ``transforms``): a ``Patterns``.

    ``layer``: a layer with an (H, W, C) output (ignored for ``objective="class"``);
    ``targets``: its channel numbers, or class numbers; ``preprocessing``: the
    model's pixel scaling (a key of ``PREPROCESSING``; preferred) or
    ``value_range`` (its input range, the same in every channel); default 0..1.
    ``learning_rate``: Adam's, on the Fourier coefficients (default Lucid's
    0.05 from 128 steps up; a short run takes larger steps, up to 0.2 at 32
    steps or fewer, so that it gets as far);
    ``shift`` (pixels; default 8 as Lucid, at most a quarter of the side, at
    least a sixteenth), ``scale``, ``rotate`` (degrees): the random warp at
    each step (``shift=0, scale=(1, 1), rotate=0`` turns robustness off);
    ``total_variation`` / ``l2``: penalties on the 0..1 picture (mean absolute
    difference of neighbours; mean squared distance from grey, at most 0.25),
    each weighed against the pattern's own objective (``l2=3`` may take up to
    three quarters of it from a picture that is all black and white), so that
    they mean the same for every layer and model; ``decay``: the spectrum's
    fall-off (1 in Lucid, for 224-pixel pictures; 1.5 gives cleaner strokes on
    small ones); ``decorrelate``: mix colours by ImageNet's colour correlation
    (default: for three-channel models); ``size``: the side of the pattern for
    a model that takes any size (default 128). ``progress(done, total)`` after
    each step of each group of patterns (see the module); False stops with
    ``Cancelled``. Deterministic for ``seed``.
    """
    name, count, targets = check_targets(probe, layer, targets, objective)
    check_steps(steps)
    shape = pattern_size(probe, size)
    group = group_size(probe, shape, len(targets))
    started = time.perf_counter()
    matrix, offset = input_mapping(shape[2], preprocessing=preprocessing, value_range=value_range)
    rate = learning_rate or min(0.2, max(0.05, 0.05 * ROBUST_STEPS / steps))
    side = max(shape[:2])
    reach = max(min(8.0, side / 4), side / 16) if shift is None else shift  # Lucid: 8 + 4 pixels at 224
    found = [
        _robust_group(probe, name, objective, count, targets[part], steps=steps, seed=seed, shape=shape, matrix=matrix, offset=offset,
                      rate=rate, shift=reach, scale=scale, rotate=rotate, penalties=(total_variation, l2), decorrelate=decorrelate,
                      decay=decay, progress=report)
        for part, report in _parts(len(targets), group, steps, progress)
    ]
    pixels, start_pixels, signal = (np.concatenate([f[i] for f in found]) for i in range(3))
    return finish_patterns(
        probe, name, targets, objective=objective, method="robust", steps=steps, seed=seed, pixels=pixels,
        start_pixels=start_pixels, matrix=matrix, offset=offset, signal=signal, started=started, class_names=class_names,
    )


def _robust_group(
    probe: Probe, name: str | None, objective: str, count: int, targets: list[int], *, steps: int, seed: int,
    shape: tuple[int, int, int], matrix: np.ndarray, offset: np.ndarray, rate: float, shift: float, scale: tuple[float, float],
    rotate: float, penalties: tuple, decorrelate: bool | None, decay: float, progress: Callable[[int, int], bool | None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One group of robust patterns, optimised together: (pixels float32 (n, H, W, C) in 0..1, the
    start's pixels, bool (n,) whether each objective ever had a gradient). ``shift`` in pixels."""
    import tensorflow as tf

    height, width, channels = shape
    rngs = [np.random.default_rng([seed, t]) for t in targets]  # one per pattern: its start, then its warps
    constants = {
        "scale": tf.constant(spectrum_scale(height, width, decay=decay)),
        "colour": tf.constant(colour_matrix(channels, decorrelate=decorrelate)),
        "matrix": tf.constant(matrix), "offset": tf.constant(offset), "select": tf.one_hot(targets, count, dtype=tf.float32),
        "penalties": tf.constant(list(penalties), tf.float32), "rate": tf.constant(rate, tf.float32),
    }

    def render(spectra):  # Fourier parameters -> model inputs
        pixels = fourier_pixels(spectra, constants["scale"], constants["colour"], (height, width))
        return tf.einsum("nhwc,cd->nhwd", pixels, constants["matrix"]) + constants["offset"]

    start, signal = wake_up(
        score_function(probe, name, objective), render, start_spectrum(rngs, shape), constants["select"],
        lambda i, k: wake_proposal(rngs[i], shape, k, constants["scale"].numpy()),
    )
    spectrum = tf.Variable(start)
    moments = [tf.Variable(tf.zeros_like(spectrum)) for _ in range(2)]  # Adam's running moments
    step_function = _robust_step(probe, name, objective, (height, width))
    for step in range(steps):
        warps = random_transforms(rngs, (height, width), shift=shift, scale=scale, rotate=rotate)
        signal |= step_function(spectrum, *moments, tf.constant(step + 1, tf.float32), tf.constant(warps), constants).numpy()
        tick(progress, step + 1, steps)
    pixels = fourier_pixels(spectrum, constants["scale"], constants["colour"], (height, width)).numpy()
    start_pixels = fourier_pixels(tf.constant(start), constants["scale"], constants["colour"], (height, width)).numpy()
    return pixels, start_pixels, signal


def _robust_step(probe: Probe, layer: str | None, objective: str, size: tuple[int, int]) -> Callable:
    """One compiled step (forward, backward, Adam update) for this probe, layer, objective and size;
    built once and kept in the probe's cache. Returns bool (N,): where the objective had a gradient."""

    def build():
        import tensorflow as tf

        scores_of = score_function(probe, layer, objective)

        @tf.function(reduce_retracing=True, autograph=False)
        def step(spectrum, first, second, t, warps, constants):
            with tf.GradientTape() as tape:
                pixels = fourier_pixels(spectrum, constants["scale"], constants["colour"], size)
                seen = tf.einsum("nhwc,cd->nhwd", transform_images(pixels, warps), constants["matrix"]) + constants["offset"]
                gains = tf.reduce_sum(scores_of(seen) * constants["select"], axis=1)  # (N,) each pattern's own target
                # penalties in proportion to each pattern's own objective, so that their weights mean the
                # same for a channel that reaches 0.1 and one that reaches 100
                level = tf.stop_gradient(tf.abs(gains))
                loss = tf.reduce_sum(gains - level * tf.reduce_sum(_penalties(pixels) * constants["penalties"], axis=1))
            grad, grad_seen = tape.gradient(loss, [spectrum, seen])
            # Adam, ascending: every coefficient moves at its own normalised pace (as Lucid/Lucent)
            first.assign(0.9 * first + 0.1 * grad)
            second.assign(0.999 * second + 0.001 * tf.square(grad))
            corrected = (first / (1.0 - 0.9 ** t)) / (tf.sqrt(second / (1.0 - 0.999 ** t)) + 1e-8)
            spectrum.assign_add(constants["rate"] * corrected)
            return tf.reduce_any(tf.not_equal(grad_seen, 0.0), axis=(1, 2, 3))
        return step

    return probe.cached_model(("featurevis", "robust", layer, objective, size), build)


def _penalties(pixels: Any) -> Any:
    """float32 (N, 2): each picture's total variation (mean |neighbour difference|, both ways) and
    mean squared distance from grey, for pixels float32 (N, H, W, C) in 0..1."""
    import tensorflow as tf

    across = tf.reduce_mean(tf.abs(pixels[:, :, 1:] - pixels[:, :, :-1]), axis=(1, 2, 3))
    down = tf.reduce_mean(tf.abs(pixels[:, 1:] - pixels[:, :-1]), axis=(1, 2, 3))
    return tf.stack([across + down, tf.reduce_mean(tf.square(pixels - 0.5), axis=(1, 2, 3))], axis=1)


# --- plain gradient ascent on pixels ---------------------------------------------------------


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
    be given). Arguments as ``robust_patterns``.
    """
    name, count, targets = check_targets(probe, layer, targets, objective)
    check_steps(steps)
    shape = pattern_size(probe, size)
    group = group_size(probe, shape, len(targets))
    started = time.perf_counter()
    matrix, offset = input_mapping(shape[2], preprocessing=preprocessing, value_range=value_range)
    found = [
        _plain_group(probe, name, objective, count, targets[part], steps=steps, step_size=step_size, seed=seed, shape=shape,
                     matrix=matrix, offset=offset, progress=report)
        for part, report in _parts(len(targets), group, steps, progress)
    ]
    images, first, signal = (np.concatenate([f[i] for f in found]) for i in range(3))
    return finish_patterns(
        probe, name, targets, objective=objective, method="plain", steps=steps, seed=seed,
        pixels=pixels_of(images, matrix, offset), start_pixels=pixels_of(first, matrix, offset),
        matrix=matrix, offset=offset, signal=signal, started=started, class_names=class_names,
        images=_deprocess(images),
    )


def _plain_group(
    probe: Probe, name: str | None, objective: str, count: int, targets: list[int], *, steps: int, step_size: float, seed: int,
    shape: tuple[int, int, int], matrix: np.ndarray, offset: np.ndarray, progress: Callable[[int, int], bool | None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One group of plain patterns, climbed together: (model inputs float32 (n, H, W, C) at the end
    and at the start, bool (n,) whether each objective ever had a gradient)."""
    import tensorflow as tf

    height, width, channels = shape
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
        spectrum = tf.constant(wake_proposal(rngs[i], shape, k, scale)[np.newaxis])
        pixels = fourier_pixels(spectrum, tf.constant(scale), np.eye(channels, dtype=np.float32), (height, width))
        return pixels.numpy()[0] @ matrix + offset

    first, signal = wake_up(score_function(probe, name, objective), tf.identity, start @ matrix + offset, constants["select"], propose)
    images = tf.Variable(first)
    step_function = _plain_step(probe, name, objective)
    for step in range(steps):
        signal |= step_function(images, constants).numpy()
        tick(progress, step + 1, steps)
    return images.numpy(), first, signal


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


# --- waking targets up, finishing ------------------------------------------------------------


def wake_up(
    scores_of: Callable, render: Callable, start: np.ndarray, select: Any, propose: Callable[[int, int], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Starts from which every target can climb, where one exists: (parameters, bool (N,) signal).

    ``start``: the parameters of N patterns, batch axis first; ``render``:
    parameters -> model inputs (a TensorFlow function); ``select``: float32
    (N, K) one-hot targets; ``propose(i, k)``: the k-th other start for
    pattern i (parameters without the batch axis). A ReLU channel that is zero
    all over a nearly grey image has no gradient there, so the ascent could
    never move: for such targets the ``WAKE_STARTS`` are tried in rounds (one
    batch of at most N per round, stopping when every target has a gradient),
    and the first with a gradient replaces the start. ``signal`` says which
    targets have one.
    """
    import tensorflow as tf

    signal = _gradient_signal(scores_of, render(tf.constant(start)), select)
    start = start.copy()
    for k in range(len(WAKE_STARTS)):
        asleep = np.flatnonzero(~signal)
        if not len(asleep):
            break
        candidates = np.stack([propose(int(i), k) for i in asleep])
        woke = _gradient_signal(scores_of, render(tf.constant(candidates)), tf.gather(select, asleep))
        start[asleep[woke]] = candidates[woke]
        signal[asleep[woke]] = True
    return start, signal


def _gradient_signal(scores_of: Callable, inputs: Any, select: Any) -> np.ndarray:
    """bool (N,): whether each pattern's own target has a nonzero gradient with respect to the
    model inputs float32 (N, H, W, C) (one forward and backward pass)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(inputs)
        gains = tf.reduce_sum(scores_of(inputs) * select)
    return np.any(tape.gradient(gains, inputs).numpy() != 0, axis=(1, 2, 3))


def finish_patterns(
    probe: Probe, layer: str | None, targets: list[int], *, objective: str, method: str, steps: int, seed: int,
    pixels: np.ndarray, start_pixels: np.ndarray, matrix: np.ndarray, offset: np.ndarray, signal: np.ndarray,
    started: float, class_names: Sequence[str] | None = None, images: np.ndarray | None = None,
) -> Patterns:
    """The ``Patterns`` for optimised pixels float32 (N, H, W, C) in 0..1: model inputs, the
    objective reached and at the start (one forward pass each), dead targets flat grey.

    ``signal``: bool (N,), whether the objective ever had a gradient; ``images``:
    uint8 pictures to show instead of the pixels themselves (the plain method's stretched view).
    """
    inputs = (pixels @ matrix + offset).astype(np.float32)
    starts = (start_pixels @ matrix + offset).astype(np.float32)
    group = batch_size(probe, inputs.shape[1:], keep=[layer] if layer else [], requested=len(targets))
    activation, start = (np.concatenate([
        target_activations(probe, layer, targets[part], values[part], objective=objective) for part in slices(len(targets), group)
    ]) for values in (inputs, starts))
    shown = np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8) if images is None else images.copy()
    dead = ~np.asarray(signal, bool)
    shown[dead] = 128  # no pattern exists: grey, never noise
    return Patterns(
        images=shown, inputs=inputs, activation=activation, start=start, dead=dead, targets=list(targets),
        layer=layer, objective=objective, method=method, steps=steps, seed=seed,
        seconds=time.perf_counter() - started, class_names=list(class_names) if class_names else None,
    )
