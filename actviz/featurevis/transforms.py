"""Transformation robustness (lucent's ``transform``): at every step each pattern is shifted by a
random few pixels, scaled a little and turned a little (one affine warp per pattern, in
TensorFlow, on the batch) before the network sees it. Only features that still excite the
filter after such changes survive: the pixel-level tricks of plain ascent do not.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


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
