"""Resampling maps and images with matrices: bilinear resizing with the corners aligned, and a
Gaussian blur, both separable (one matrix per axis), in float64.

The one resizing of maps in actviz: class activation maps over their image, Score-CAM's masks,
heat maps in the data set view.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def interpolation_matrix(size_out: int, size_in: int) -> np.ndarray:
    """float64 (size_out, size_in): linear interpolation with the corners aligned (the first and last
    output samples sit on the first and last input samples), as scipy's ``zoom(order=1)``,
    PyTorch's ``UpsamplingBilinear2d`` and the Score-CAM implementations use."""
    matrix = np.zeros((size_out, size_in))
    if size_in == 1 or size_out == 1:
        matrix[:, 0] = 1.0
        return matrix
    position = np.arange(size_out) * (size_in - 1) / (size_out - 1)
    low = np.minimum(np.floor(position).astype(int), size_in - 2)
    fraction = position - low
    rows = np.arange(size_out)
    matrix[rows, low] = 1.0 - fraction
    matrix[rows, low + 1] = fraction
    return matrix


def blur_matrix(size: int, sigma: float) -> np.ndarray:
    """float64 (size, size): a Gaussian blur along one axis as a matrix, edges continued with their
    last value; the same kernel as scipy's ``gaussian_filter(mode="nearest")`` (cut at 4 sigma)."""
    if sigma <= 0:
        return np.eye(size)
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    matrix = np.zeros((size, size))
    rows = np.arange(size)
    for offset, weight in zip(offsets, weights):
        np.add.at(matrix, (rows, np.clip(rows + offset, 0, size - 1)), weight)
    return matrix


def upsample(maps: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize, corners aligned: float (N, h, w, K) -> float32 (N, H, W, K) for ``size`` (H, W).

    >>> upsample(np.array([[[[0.0], [1.0]]]]), (1, 3))[0, :, :, 0]
    array([[0. , 0.5, 1. ]], dtype=float32)
    """
    rows = interpolation_matrix(int(size[0]), maps.shape[1])
    cols = interpolation_matrix(int(size[1]), maps.shape[2])
    return np.einsum("Hh,nhwk,Ww->nHWk", rows, np.asarray(maps, dtype=np.float64), cols, optimize=True).astype(np.float32)
