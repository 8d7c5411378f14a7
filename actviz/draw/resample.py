"""Every resizing of a map in actviz, and a Gaussian blur: bilinear resizings and the blur as
matrices, separable (one matrix per axis), in float64; for grids shown on a screen, exact
whole-factor shrinking (block averages) and enlarging (each value a block of pixels).

Two bilinear resizings, because two uses place a map's cells differently:

- ``upsample``, corners aligned: the first and last samples of the map land on the first and
  last pixels. Score-CAM's masks are made so in the reference implementation
  (``UpsamplingBilinear2d``), and actviz matches it exactly.
- ``resize_centred``, cell centres aligned: each cell of a map stands for a block of the image
  and its value lands on the middle of that block (as Pillow, OpenCV's ``resize`` and
  ``tf.image.resize`` place it, which is how pytorch-grad-cam and the keras-io example draw
  their heat maps); when it shrinks a map it averages the cells each pixel covers. Corners
  aligned would stretch a 7 x 7 map over 224 pixels by half a cell (16 pixels) towards the
  edges, and alias when shrinking, so pictures of a map use this one (``figures.overlay``: the
  heat maps over an image in the dashboard, the data set view and the command line).
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


def centred_matrix(size_out: int, size_in: int) -> np.ndarray:
    """float64 (size_out, size_in): linear interpolation with the cells' centres aligned (output
    sample i sits at input position (i + 0.5) * size_in / size_out - 0.5, edges continued with
    their last value); when shrinking, the triangle is widened to the input cells one output
    cell covers, so that it averages them. The weights of Pillow's ``BILINEAR`` resize.

    >>> centred_matrix(4, 2)
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]])
    """
    scale = size_in / size_out
    reach = max(scale, 1.0)  # one input cell when enlarging; the cells an output cell covers when shrinking
    centres = (np.arange(size_out) + 0.5) * scale
    distance = (np.arange(size_in)[None, :] + 0.5 - centres[:, None]) / reach
    weights = np.clip(1.0 - np.abs(distance), 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


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


def resize_centred(heatmap: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of one map, cell centres aligned: float (h, w) -> float32 (H, W) for ``size``
    (H, W). Values stay within the map's own range (each is an average of neighbouring cells).

    >>> resize_centred(np.array([[0.0, 1.0]]), (1, 4))
    array([[0.  , 0.25, 0.75, 1.  ]], dtype=float32)
    """
    values = np.asarray(heatmap, dtype=np.float64)
    rows = centred_matrix(int(size[0]), values.shape[0])
    cols = centred_matrix(int(size[1]), values.shape[1])
    return (rows @ values @ cols.T).astype(np.float32)


def shrink(activation: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: float (H, W, C) -> float32 (H//f, W//f, C); f=1 is a no-op."""
    if factor <= 1:
        return activation
    height, width, channels = activation.shape
    h, w = max(1, height // factor), max(1, width // factor)
    if height < factor or width < factor:
        return activation
    blocks = np.asarray(activation[: h * factor, : w * factor], dtype=np.float32)
    return blocks.reshape(h, factor, w, factor, channels).mean(axis=(1, 3), dtype=np.float32)


def enlarge(array: np.ndarray, zoom: int, *, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Each value repeated as a ``zoom`` x ``zoom`` block along ``axes`` (height, width): any array
    -> the same dtype, those axes ``zoom`` times longer. Nothing is smoothed: each activation stays
    its own block of pixels.

    >>> enlarge(np.array([[1, 2]], np.uint8), 2)
    array([[1, 1, 2, 2],
           [1, 1, 2, 2]], dtype=uint8)
    """
    return np.repeat(np.repeat(array, zoom, axis=axes[0]), zoom, axis=axes[1])
