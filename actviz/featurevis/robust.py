"""What a filter looks for, drawn so that a person can read it: robust feature visualisation.

Plain gradient ascent on pixels (``filters.plain_patterns``) finds fine stripes
and pixel noise: the network answers strongly to high frequencies that no real
image has. Feature visualisation research (Olah, Mordvintsev and Schubert,
"Feature Visualization", Distill 2017; the Lucid and Lucent libraries) fixed
this with two ideas, both used here:

1. **A better-conditioned image.** The pattern is not a grid of free pixels but
   a 2-D Fourier spectrum whose coefficients are scaled by
   ``1 / max(frequency, 1 / size) ** decay``, so that every frequency moves at
   the pace it has in natural images (a step of the same size changes coarse
   shapes as easily as fine ones, instead of mostly the finest). For colour
   models the three channels are mixed by the square root of ImageNet's
   colour correlation (so the optimiser works in decorrelated colour, as
   Lucid does); grey models get one plain intensity channel. A sigmoid keeps
   every pixel in 0..1, which is then mapped into the model's own input range
   by the model's preprocessing.
2. **Transformation robustness.** At every step, each pattern is shifted by a
   random few pixels, scaled a little and rotated a little (one affine warp per
   pattern, in TensorFlow, on the batch) before the network sees it. Only
   features that still excite the filter after such changes survive: the
   pixel-level tricks do not.

Optional total-variation and L2 penalties smooth the pattern further. The
objective is a channel (its mean over the map), a neuron (the channel at the
centre of the map) or a class (its logit, the score before the softmax). All
requested patterns are optimised together: one forward and one backward pass
per step whatever their number. Each pattern's start and random transforms come
from ``(seed, target)``, so a channel's pattern does not depend on which other
channels are asked for with it.

A pattern that cannot be made is reported, not drawn as noise: when the
objective's gradient with respect to the image is exactly zero at every step
(typically a ReLU channel that stays at zero for every input tried, a "dead"
filter), ``Patterns.dead`` is True and its picture is flat grey.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import Cancelled, ChannelNotFoundError, ChoiceError
from ..core.predictions import check_class, class_labels
from ..core.probe import Probe

#: What a pattern can be made to excite.
OBJECTIVES = ("channel", "neuron", "class")
#: How a pattern is made: plain pixel ascent, or the robust method of this module.
METHODS = ("plain", "robust")
#: Side of the pattern images for models that accept any input size.
DYNAMIC_SIZE = 128
#: Steps of the robust method unless asked otherwise.
ROBUST_STEPS = 128

#: Square root of ImageNet's colour correlation (as measured for Lucid), columns normalised so the
#: largest has length 1: decorrelated colour -> RGB.
_COLOUR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOUR = _COLOUR_SQRT / np.max(np.linalg.norm(_COLOUR_SQRT, axis=0))


@dataclass
class Patterns:
    """Patterns that excite chosen channels (or classes), with what each reached.

    ``images``: uint8 (N, H, W, C), what to show (for the robust method the
    very pixels the model was given; a dead target is flat grey);
    ``inputs``: float32 (N, H, W, C), the model input of each pattern, in the
    model's own range (preprocessing applied); ``activation``: float32 (N,),
    the objective on the untransformed pattern; ``start``: float32 (N,), the
    objective on the starting image; ``dead``: bool (N,), True where no
    pattern could be made (the gradient was zero at every step).
    ``targets`` are channel numbers (or class numbers for ``objective="class"``).
    """

    images: np.ndarray
    inputs: np.ndarray
    activation: np.ndarray
    start: np.ndarray
    dead: np.ndarray
    targets: list[int]
    layer: str | None
    objective: str
    method: str
    steps: int
    seed: int
    seconds: float = 0.0
    class_names: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.targets)

    def target_name(self, index: int) -> str:
        """Plain words for the i-th target: "channel 5 of block2_conv1", "digit 3" ..."""
        target = self.targets[index]
        if self.objective == "class":
            return class_labels(target + 1, self.class_names)[target]
        where = "the centre of " if self.objective == "neuron" else ""
        return f"{where}channel {target} of {self.layer}"

    def captions(self) -> list[str]:
        """One line per pattern, in plain words (dead targets say so)."""
        lines = []
        for i in range(len(self)):
            if self.dead[i] and self.objective == "class":
                lines.append(f"{self.target_name(i)}: no pattern: the model's score for it does not change "
                             "with the picture, so nothing can be drawn.")
            elif self.dead[i]:
                lines.append(f"{self.target_name(i)}: no pattern: it never responds (a 'dead' filter); "
                             "it stays at zero for every image tried, so nothing can be drawn.")
            else:
                lines.append(f"{self.target_name(i)}: reaches {self.activation[i]:.3g} (from {self.start[i]:.3g} on the starting image)")
        return lines

    def rows(self) -> list[dict]:
        """A table for a view: one dict per pattern (target, what, activation, start, dead)."""
        return [
            {"target": int(t), "what": self.target_name(i), "activation": float(self.activation[i]),
             "start": float(self.start[i]), "dead": bool(self.dead[i])}
            for i, t in enumerate(self.targets)
        ]

    def note(self) -> str:
        """How the pictures were made and how to read them, in plain words."""
        goal = {
            "channel": "to make each channel as strong as possible on average over the whole picture",
            "neuron": "to make each channel as strong as possible at the centre of the picture",
            "class": "to make the model's score for each class as high as possible",
        }[self.objective]
        read = {
            "channel": "Read it as a texture: what the filter looks for, repeated all over; the strokes, shapes and "
                       "colours are the ones it prefers.",
            "neuron": "Look at the middle: that is what the filter looks for at one place; the edges matter little.",
            "class": "Read it as a collage of the things the model takes as signs of that class, not as a photo.",
        }[self.objective]
        if self.method == "robust":
            how = (f"Each picture was changed step by step ({self.steps} steps) {goal}. It was built from smooth "
                   "waves rather than single pixels, and at every step it was shifted, scaled and turned a little "
                   f"at random, so only shapes that keep working when moved survive. {read}")
        else:
            how = (f"Each picture was changed pixel by pixel ({self.steps} steps) {goal}, starting from grey with "
                   "a little noise, then stretched in contrast for viewing. Plain ascent tends to find fine "
                   "stripes and pixel noise that real images do not have; the robust method is easier to read.")
        dead = int(np.sum(self.dead))
        if dead:
            how += (f" {dead} of {len(self)} never respond at all (dead filters): no picture tried (a grey one, "
                    f"{len(WAKE_STARTS)} random darker, brighter and smoother ones, and every step) made them fire, "
                    "so they are shown flat grey rather than as noise.")
        return how

    def picture(self, index: int | None = None, *, side: int = 128, per_row: int = 8) -> np.ndarray:
        """One pattern (``index``) or all of them in rows, enlarged by a whole factor to about
        ``side`` pixels each: uint8 (H', W', 3), white between patterns."""
        from ..draw.figures import tile_images

        images = self.images if index is None else self.images[index:index + 1]
        zoom = max(1, side // max(1, max(images.shape[1:3])))
        return tile_images(images, per_row=max(1, min(per_row, len(images))), gap=4, zoom=zoom)

    def _repr_png_(self) -> bytes:
        from ..draw.figures import picture_png

        return picture_png(self.picture(side=96))


# --- the objective: one score per pattern, from one forward pass -----------------------------


def check_targets(probe: Probe, layer: str | None, targets: Sequence[int], objective: str) -> tuple[str | None, int, list[int]]:
    """(layer name or None for classes, how many targets there are, the targets as ints), or a
    ``ChoiceError`` / ``ChannelNotFoundError`` / ``ClassNotFoundError`` in plain words."""
    if objective not in OBJECTIVES:
        raise ChoiceError(f"Unknown objective '{objective}'. Choose one of: {', '.join(OBJECTIVES)}.")
    targets = list(targets)
    if objective == "class":
        count = class_count_of(probe)
        if not targets:
            raise ChoiceError(f"Choose at least one class (the model has {count}, numbered 0 to {count - 1}).")
        return None, count, [check_class(t, count) for t in targets]
    info = probe.table.resolve(layer) if layer is not None else None
    if info is None:
        raise ChoiceError("Choose a layer whose channels the patterns should excite.")
    count = int(info.output_shape[-1])
    bad = [t for t in targets if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= int(t) < count]
    if bad or not targets:
        raise ChannelNotFoundError(f"Layer '{info.name}' has channels 0 to {count - 1}; asked for {targets or 'none'}.")
    return info.name, count, [int(t) for t in targets]


def class_count_of(probe: Probe) -> int:
    """How many classes the model's first output distinguishes (one sigmoid unit is two)."""
    size = math.prod(d or 1 for d in probe.symbolic_logits().shape[1:])
    return 2 if size == 1 else int(size)


def score_function(probe: Probe, layer: str | None, objective: str) -> Callable[[Any], Any]:
    """A TensorFlow function: model input float32 (N, H, W, C) -> scores float32 (N, K).

    K is the layer's channel count (channel: the mean over the map; neuron: the
    value at the map's centre) or the class count (class: the logits; one
    sigmoid unit z gives the two classes (-z, z), whose probabilities are 1 - p and p).
    """
    import tensorflow as tf

    if objective == "class":
        model = probe.logits_model()

        def scores(x):
            logits = tf.reshape(model(x, training=False)[0], [tf.shape(x)[0], -1])
            return tf.concat([-logits, logits], axis=1) if logits.shape[1] == 1 else logits
        return scores
    model = probe.feature_model(layer)
    if objective == "neuron":
        def scores(x):
            maps = model(x, training=False)
            return maps[:, tf.shape(maps)[1] // 2, tf.shape(maps)[2] // 2, :]
        return scores
    return lambda x: tf.reduce_mean(model(x, training=False), axis=(1, 2))


def target_activations(
    probe: Probe, layer: str | None, targets: Sequence[int], inputs: np.ndarray, *, objective: str = "channel",
) -> np.ndarray:
    """Each input's own objective: float32 (N,) for model inputs float32 (N, H, W, C) and N targets.

    One forward pass. The same measure the optimisation climbs (used to report
    what a pattern reached, and by the benchmark).
    """
    import tensorflow as tf

    name, _, targets = check_targets(probe, layer, targets, objective)
    if len(inputs) != len(targets):
        raise ValueError(f"one target per input: {len(inputs)} inputs, {len(targets)} targets")
    scores = score_function(probe, name, objective)(tf.constant(np.asarray(inputs, dtype=np.float32))).numpy()
    return scores[np.arange(len(targets)), targets].astype(np.float32)


# --- from 0..1 pixels to the model's input ---------------------------------------------------


def input_mapping(channels: int, *, preprocessing: str | None = None, value_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The affine map from pixels in 0..1 to model inputs: (matrix float32 (C, C), offset float32 (C,)).

    ``model_input = pixels @ matrix + offset``. With ``preprocessing`` (a key of
    ``preprocessing.PREPROCESSING``) it is that scaling exactly, channel order
    included (worked out by ``preprocess`` itself on black and on each pure
    channel); otherwise 0..1 is stretched to ``value_range`` (default 0..1) in
    every channel. Every supported scaling is affine, so this is exact.
    """
    if preprocessing is None:
        low, high = value_range if value_range is not None else (0.0, 1.0)
        return np.eye(channels, dtype=np.float32) * np.float32(high - low), np.full(channels, low, np.float32)
    from ..inputs.preprocessing import preprocess

    black = np.zeros((1, 1, channels), np.uint8)
    offset = preprocess(black, preprocessing).reshape(channels)
    pure = np.zeros((channels, 1, 1, channels), np.uint8)
    pure[np.arange(channels), 0, 0, np.arange(channels)] = 255
    matrix = preprocess(pure, preprocessing).reshape(channels, channels) - offset
    return matrix.astype(np.float32), offset.astype(np.float32)


def pixels_of(inputs: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Model inputs float32 (N, H, W, C) back to pixels float32 0..1 (the inverse of ``input_mapping``)."""
    return (np.asarray(inputs, np.float32) - offset) @ np.linalg.inv(matrix).astype(np.float32)


# --- the parameterisation --------------------------------------------------------------------


def spectrum_scale(height: int, width: int, *, decay: float = 1.0) -> np.ndarray:
    """float32 (H, W//2 + 1): the factor of each Fourier coefficient of a real H x W image.

    ``1 / max(f, 1/max(H, W)) ** decay`` with f the frequency in cycles per
    pixel, so low frequencies get large factors as in natural images (whose
    spectrum falls as 1/f); the constant term gets the largest one.
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    return (1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay).astype(np.float32)


def fourier_pixels(spectrum: Any, scale: Any, colour: Any, size: tuple[int, int]) -> Any:
    """Pixels 0..1 from Fourier parameters: (N, 2, C, H, W//2+1) float32 -> (N, H, W, C) float32.

    The scaled spectrum is inverted with an orthonormal inverse FFT (the
    unnormalised inverse times sqrt(H*W)), divided by 4 as Lucid does (a start
    of low contrast), mixed into RGB by ``colour`` (C, C) and squashed by a
    sigmoid into 0..1.
    """
    import tensorflow as tf

    height, width = size
    coefficients = tf.complex(spectrum[:, 0] * scale, spectrum[:, 1] * scale)
    planes = tf.signal.irfft2d(coefficients, fft_length=[height, width]) * math.sqrt(height * width) / 4.0
    image = tf.transpose(planes, (0, 2, 3, 1))  # (N, H, W, C)
    return tf.sigmoid(tf.einsum("nhwc,dc->nhwd", image, colour))


# --- transformation robustness ---------------------------------------------------------------


def random_transforms(
    rngs: Sequence[np.random.Generator], size: tuple[int, int], *, shift: float = 8.0,
    scale: tuple[float, float] = (0.9, 1.1), rotate: float = 10.0,
) -> np.ndarray:
    """One random affine warp per generator: float32 (N, 8), TensorFlow's projective-transform rows.

    Each warp shifts by up to ``shift`` pixels in x and y, scales by a factor in
    ``scale`` and rotates by up to ``rotate`` degrees, about the image centre.
    """
    height, width = size
    rows = []
    for rng in rngs:
        dx, dy = rng.uniform(-shift, shift, 2)
        factor = rng.uniform(*scale)
        angle = np.deg2rad(rng.uniform(-rotate, rotate))
        rows.append(_warp(dx, dy, factor, angle, height, width))
    return np.asarray(rows, dtype=np.float32)


def _warp(dx: float, dy: float, factor: float, angle: float, height: int, width: int) -> list[float]:
    """The row that maps each output pixel to where it comes from in the input (TF's convention):
    the input is moved by (dx, dy), scaled by ``factor`` and turned by ``angle`` radians about its centre."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = math.cos(angle) / factor, math.sin(angle) / factor
    a0, a1, b0, b1 = cos, sin, -sin, cos  # the inverse rotation and scaling
    ox, oy = cx + dx, cy + dy
    return [a0, a1, cx - a0 * ox - a1 * oy, b0, b1, cy - b0 * ox - b1 * oy, 0.0, 0.0]


def transform_images(images: Any, transforms: Any) -> Any:
    """Warp each image by its own row: float32 (N, H, W, C), (N, 8) -> float32 (N, H, W, C).

    Bilinear, edges filled by reflection (so no border of a made-up colour
    appears); differentiable with respect to the images.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images, tf.float32)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.convert_to_tensor(transforms, tf.float32), output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )


# --- the robust method -----------------------------------------------------------------------


def pattern_size(probe: Probe, size: int | None = None) -> tuple[int, int, int]:
    """(H, W, C) of the patterns: the model's input size, or ``size`` (default 128) where it takes any."""
    height, width, channels = probe.input_shape
    side = int(size or DYNAMIC_SIZE)
    return int(height or side), int(width or side), int(channels)


def robust_patterns(
    probe: Probe, layer: str | None, targets: Sequence[int], *, objective: str = "channel", steps: int = ROBUST_STEPS,
    seed: int = 0, preprocessing: str | None = None, value_range: tuple[float, float] | None = None,
    learning_rate: float | None = None, shift: float | None = None, scale: tuple[float, float] = (0.9, 1.1), rotate: float = 10.0,
    total_variation: float = 0.0, l2: float = 3.0, decorrelate: bool | None = None, decay: float = 1.5,
    size: int | None = None, class_names: Sequence[str] | None = None,
    progress: Callable[[int, int], bool | None] | None = None,
) -> Patterns:
    """Patterns that excite each target, made robustly (see the module's text): a ``Patterns``.

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
    a model that takes any size (default 128). ``progress(step, steps)`` after
    each step; False stops with ``Cancelled``. Deterministic for ``seed``.
    """
    import tensorflow as tf

    name, count, targets = check_targets(probe, layer, targets, objective)
    check_steps(steps)
    height, width, channels = pattern_size(probe, size)
    probe.check_budget((len(targets), height, width, channels), [name] if name else [])
    started = time.perf_counter()
    rngs = [np.random.default_rng([seed, t]) for t in targets]  # one per pattern: its start, then its warps
    matrix, offset = input_mapping(channels, preprocessing=preprocessing, value_range=value_range)
    constants = {
        "scale": tf.constant(spectrum_scale(height, width, decay=decay)),
        "colour": tf.constant(_COLOUR if channels == 3 and decorrelate is not False else np.eye(channels, dtype=np.float32)),
        "matrix": tf.constant(matrix), "offset": tf.constant(offset), "select": tf.one_hot(targets, count, dtype=tf.float32),
        "penalties": tf.constant([total_variation, l2], tf.float32),
        "rate": tf.constant(learning_rate or min(0.2, max(0.05, 0.05 * ROBUST_STEPS / steps)), tf.float32),
    }

    def render(spectra):  # Fourier parameters -> model inputs
        pixels = fourier_pixels(spectra, constants["scale"], constants["colour"], (height, width))
        return tf.einsum("nhwc,cd->nhwd", pixels, constants["matrix"]) + constants["offset"]

    start, signal = wake_up(
        score_function(probe, name, objective), render, start_spectrum(rngs, (height, width, channels)), constants["select"],
        lambda i, k: wake_proposal(rngs[i], (height, width, channels), k, constants["scale"].numpy()),
    )
    spectrum = tf.Variable(start)
    moments = [tf.Variable(tf.zeros_like(spectrum)) for _ in range(2)]  # Adam's running moments
    step_function = _robust_step(probe, name, objective, (height, width))
    side = max(height, width)
    reach = max(min(8.0, side / 4), side / 16) if shift is None else shift  # Lucid: 8 + 4 pixels at 224
    for step in range(steps):
        warps = random_transforms(rngs, (height, width), shift=reach, scale=scale, rotate=rotate)
        signal |= step_function(spectrum, *moments, tf.constant(step + 1, tf.float32), tf.constant(warps), constants).numpy()
        tick(progress, step + 1, steps)
    pixels = fourier_pixels(spectrum, constants["scale"], constants["colour"], (height, width)).numpy()
    start_pixels = fourier_pixels(tf.constant(start), constants["scale"], constants["colour"], (height, width)).numpy()
    return finish_patterns(
        probe, name, targets, objective=objective, method="robust", steps=steps, seed=seed, pixels=pixels,
        start_pixels=start_pixels, matrix=matrix, offset=offset, signal=signal, started=started, class_names=class_names,
    )


def check_steps(steps: int) -> None:
    """A ``ChoiceError`` unless 1 <= steps <= 10,000."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 10_000:
        raise ChoiceError(f"The number of steps must be a whole number from 1 to 10000 (got {steps}).")


def tick(progress: Callable[[int, int], bool | None] | None, step: int, steps: int) -> None:
    """Report a finished step; raise ``Cancelled`` when ``progress`` answers False."""
    if progress is not None and progress(step, steps) is False:
        raise Cancelled("Stopped: another choice was made while the patterns were being computed.")


#: The extra random starts tried, in this order, for a target that gives no gradient on its first
#: start: (contrast: the standard deviation of the picture before its sigmoid, extra smoothness:
#: coefficients times (1 / max(f, 1/size)) ** smoothness, brightness: a shift before the sigmoid,
#: -2.5 dark .. 2.5 bright). Each is tried twice (new random draws). Lucid's usual start is nearly grey.
WAKE_STARTS = tuple(
    (contrast, smooth, light) for _ in range(2) for light in (0.0, -2.5, 2.5) for smooth in (0.0, 1.0) for contrast in (1.5, 3.0)
)


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


def start_spectrum(rngs: Sequence[np.random.Generator], shape: tuple[int, int, int], *, sd: Sequence[float] | float = 0.01) -> np.ndarray:
    """float32 (N, 2, C, H, W//2+1): random Fourier coefficients (real, imaginary), one pattern per
    generator. ``sd`` 0.01 (Lucid's) is a nearly grey start with faint smooth blotches; a sequence
    gives each pattern its own."""
    height, width, channels = shape
    spreads = np.broadcast_to(np.asarray(sd, np.float64), (len(rngs),))
    return np.stack([rng.normal(0.0, spread, (2, channels, height, width // 2 + 1)) for rng, spread in zip(rngs, spreads)]).astype(np.float32)


def wake_proposal(rng: np.random.Generator, shape: tuple[int, int, int], k: int, scale: np.ndarray) -> np.ndarray:
    """float32 (2, C, H, W//2+1): the k-th extra start (``WAKE_STARTS``) for a sleeping target:
    more contrast, larger blotches, a dark or a bright ground (a deep channel of a model trained on
    white strokes over black may only answer to those). ``scale``: the ``spectrum_scale`` the
    parameters will be rendered with (``fourier_pixels``)."""
    height, width, _ = shape
    contrast, power, light = WAKE_STARTS[k]
    spectrum = start_spectrum([rng], shape, sd=1.0)[0].astype(np.float64)
    spectrum *= spectrum_scale(height, width, decay=power) / max(height, width) ** power
    spectrum[:, :, 0, 0] = 0.0
    # the picture before its sigmoid, as fourier_pixels makes it: set its spread, then its level
    logits = np.fft.irfft2((spectrum[0] + 1j * spectrum[1]) * scale, s=(height, width)) * math.sqrt(height * width) / 4.0
    spectrum *= contrast / max(float(logits.std()), 1e-12)
    spectrum[0, :, 0, 0] = light * 4.0 * math.sqrt(height * width) / float(scale[0, 0])
    return spectrum.astype(np.float32)


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
    activation = target_activations(probe, layer, targets, inputs, objective=objective)
    start = target_activations(probe, layer, targets, (start_pixels @ matrix + offset).astype(np.float32), objective=objective)
    shown = np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8) if images is None else images.copy()
    dead = ~np.asarray(signal, bool)
    shown[dead] = 128  # no pattern exists: grey, never noise
    return Patterns(
        images=shown, inputs=inputs, activation=activation, start=start, dead=dead, targets=list(targets),
        layer=layer, objective=objective, method=method, steps=steps, seed=seed,
        seconds=time.perf_counter() - started, class_names=list(class_names) if class_names else None,
    )


# --- measures of a pattern (for the benchmark and the tests) ----------------------------------


def high_frequency_share(images: np.ndarray) -> np.ndarray:
    """Share of each image's spectral power in the top half of spatial frequencies: float64 (N,) in 0..1.

    ``images``: float (N, H, W, C). Each channel's mean is removed; the power of
    all frequencies whose radius is above a quarter cycle per pixel (half the
    Nyquist limit of 0.5), over the power of all frequencies.
    """
    x = np.asarray(images, np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2
    fy = np.fft.fftfreq(x.shape[1])[:, None]
    fx = np.fft.fftfreq(x.shape[2])[None, :]
    high = (np.sqrt(fx * fx + fy * fy) > 0.25)[None, :, :, None]
    total = power.sum(axis=(1, 2, 3))
    return np.where(total > 0, (power * high).sum(axis=(1, 2, 3)) / np.where(total > 0, total, 1), 0.0)


def robustness(
    probe: Probe, layer: str | None, targets: Sequence[int], inputs: np.ndarray, *, objective: str = "channel",
    transforms: int = 20, seed: int = 0, shift: float = 8.0, scale: tuple[float, float] = (0.9, 1.1), rotate: float = 5.0,
) -> np.ndarray:
    """How much of its activation each pattern keeps when moved: float64 (N,).

    The target's activation after a random warp (shift up to ``shift`` pixels,
    scale in ``scale``, rotation up to ``rotate`` degrees), as a fraction of its
    activation on the pattern as it is, averaged over ``transforms`` warps.
    ``inputs``: float32 (N, H, W, C) model inputs. The warps are applied to the
    model input (edges reflected), one forward pass per warp over all patterns.
    """
    inputs = np.asarray(inputs, np.float32)
    base = target_activations(probe, layer, targets, inputs, objective=objective).astype(np.float64)
    rngs = [np.random.default_rng([seed, 7, i]) for i in range(len(inputs))]
    kept = []
    for _ in range(transforms):
        warps = random_transforms(rngs, inputs.shape[1:3], shift=shift, scale=scale, rotate=rotate)
        moved = transform_images(inputs, warps).numpy()
        kept.append(target_activations(probe, layer, targets, moved, objective=objective))
    moved = np.mean(np.asarray(kept, np.float64), axis=0) if kept else base
    return np.divide(moved, base, out=np.full(len(base), np.nan), where=base > 0)
