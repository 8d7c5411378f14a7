"""Measures of a pattern, for the benchmark and the tests: how much of its power is in fine
detail, and how much of its activation it keeps when moved."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.probe import Probe
from .objectives import target_activations
from .transforms import random_transforms, transform_images


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
