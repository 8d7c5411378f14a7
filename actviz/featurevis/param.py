"""The picture being optimised, as parameters (lucent's ``optvis/param``): a Fourier spectrum,
its colours decorrelated, squashed into pixels 0..1, then mapped into the model's input range.

Plain gradient ascent on pixels finds fine stripes and pixel noise: the network answers
strongly to high frequencies that no real image has. Feature visualisation research (Olah,
Mordvintsev and Schubert, "Feature Visualization", Distill 2017; the Lucid and Lucent
libraries) conditions the picture better: it is not a grid of free pixels but a 2-D Fourier
spectrum whose coefficients are scaled by ``1 / max(frequency, 1 / size) ** decay``
(``spectrum_scale``), so that every frequency moves at the pace it has in natural images (a
step of the same size changes coarse shapes as easily as fine ones, instead of mostly the
finest). For colour models the three channels are mixed by the square root of ImageNet's colour
correlation (so the optimiser works in decorrelated colour, as Lucid does); grey models get one
plain intensity channel (``colour_matrix``). A sigmoid keeps every pixel in 0..1
(``fourier_pixels``), which ``input_mapping`` maps into the model's own input range by the
model's preprocessing.

The starts: ``start_spectrum`` (Lucid's, nearly grey) and, for a target that gives no gradient
there, the ``WAKE_STARTS`` made by ``wake_proposal`` (more contrast, larger blotches, a dark or
a bright ground).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: Square root of ImageNet's colour correlation (as measured for Lucid), columns normalised so the
#: largest has length 1: decorrelated colour -> RGB.
_COLOUR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOUR = _COLOUR_SQRT / np.max(np.linalg.norm(_COLOUR_SQRT, axis=0))

#: The extra random starts tried, in this order, for a target that gives no gradient on its first
#: start: (contrast: the standard deviation of the picture before its sigmoid, extra smoothness:
#: coefficients times (1 / max(f, 1/size)) ** smoothness, brightness: a shift before the sigmoid,
#: -2.5 dark .. 2.5 bright). Each is tried twice (new random draws). Lucid's usual start is nearly grey.
WAKE_STARTS = tuple(
    (contrast, smooth, light) for _ in range(2) for light in (0.0, -2.5, 2.5) for smooth in (0.0, 1.0) for contrast in (1.5, 3.0)
)


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


def colour_matrix(channels: int, *, decorrelate: bool | None = None) -> np.ndarray:
    """float32 (C, C): how the parameters' colour planes mix into the picture's channels: ImageNet's
    decorrelated colour for three channels (unless ``decorrelate`` is False), else the identity."""
    return _COLOUR if channels == 3 and decorrelate is not False else np.eye(channels, dtype=np.float32)


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
