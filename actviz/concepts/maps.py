"""Where each concept is: concept maps at the layer's grid, in input pixels, and the region where
a concept sits.

An image's concept maps are its coefficients ``U`` (h, w, K) (``factorise.project`` of each
grid position's activations): how much of each concept each position holds. Shown over the
image they are resized with ``draw.resample.resize_centred``: each cell of the grid stands for a
block of the image and its value lands on the middle of that block, as the package's every
picture of a map does (a corners-aligned resize would stretch a 12 x 12 map over 24 pixels by
half a cell towards the edges, and move a corner patch by a pixel or more).

A concept's **region** is where its mean map is strong: the pixels at least ``LEVEL`` of its
maximum, the connected part holding the maximum, and its bounding box ``[x0, y0, x1, y1]`` in
input pixels (``x1``, ``y1`` one past the last pixel). Per image only its **peak** is kept (the
strength and grid cell of each concept's strongest position), which is what tells whether a
concept sits in the same place in most images (``shortcuts``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: A concept's region: where its mean map reaches this share of its maximum.
LEVEL = 0.5


def peaks(coefficients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each concept's strongest position in each image: ``coefficients`` float (n, h, w, K) ->
    (strength float32 (n, K), cell int32 (n, K) as ``y * w + x``)."""
    count, height, width, concepts = coefficients.shape
    flat = np.asarray(coefficients).reshape(count, height * width, concepts)
    cell = flat.argmax(axis=1).astype(np.int32)
    return np.take_along_axis(flat, cell[:, None, :].astype(np.int64), axis=1)[:, 0, :].astype(np.float32), cell


def to_pixels(grid_map: np.ndarray, image_hw: Sequence[int]) -> np.ndarray:
    """A map at the layer's grid float (h, w) -> float32 (H, W) over the input's pixels (cell
    centres over the middle of their blocks)."""
    from ..draw.resample import resize_centred

    return resize_centred(np.asarray(grid_map, np.float64), (int(image_hw[0]), int(image_hw[1])))


def strong_part(values: np.ndarray, *, level: float = LEVEL) -> np.ndarray:
    """bool, same shape as ``values`` float (a, b): where ``values`` reach ``level`` of their
    maximum, only the connected part (8 neighbours) that holds the maximum; all False for a map
    without a positive value."""
    from scipy import ndimage

    top = float(values.max()) if values.size else 0.0
    if top <= 0:
        return np.zeros(values.shape, bool)
    labels, _ = ndimage.label(values >= level * top, structure=np.ones((3, 3)))
    peak = np.unravel_index(int(np.argmax(values)), values.shape)
    return labels == labels[peak]


def region(grid_map: np.ndarray, image_hw: Sequence[int], *, level: float = LEVEL) -> tuple[list[int], float]:
    """Where a concept's mean map is strong, in input pixels: (``[x0, y0, x1, y1]``, the box's share
    of the image 0..1); ``[0, 0, 0, 0]`` and 0 for an empty map."""
    pixels = to_pixels(grid_map, image_hw)
    mask = strong_part(pixels, level=level)
    if not mask.any():
        return [0, 0, 0, 0], 0.0
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    box = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]
    return box, (box[2] - box[0]) * (box[3] - box[1]) / float(int(image_hw[0]) * int(image_hw[1]))


def concept_maps(probe: Any, layer: str, inputs: np.ndarray, concepts: np.ndarray, *, chunk: int) -> np.ndarray:
    """Concept maps of images: model inputs float32 (N, H, W, C) -> float32 (N, h, w, K), each
    grid position's positive activations read in ``concepts`` float (K, C')."""
    from .factorise import positive_part, project
    from .layer import forward, run_chunked

    image_shape = tuple(int(d) for d in inputs.shape[1:])
    feature, _, _ = run_chunked(forward(probe, layer, image_shape, chunk), [inputs], chunk)
    count, height, width, channels = feature.shape
    flat = positive_part(feature).reshape(-1, channels)
    return project(flat, concepts).reshape(count, height, width, len(concepts))
