"""Eigen-CAM (Muhammad & Yeasin 2020): no gradients and no class; the projection of the layer's
centred maps on their first principal component, map = (A - mean) v, v the first right singular
vector of the centred (h*w, C) matrix. Channels are ranked by the size of their entry in v.
"""

from __future__ import annotations

import numpy as np

from .cam import CAM, LayerPass


class EigenCAM(CAM):
    gradients = False

    def weights(self, found: LayerPass) -> np.ndarray:
        """The first principal direction v (N, C) of each image's centred map."""
        centred = _centred(found.activation)
        count, depth = centred.shape[0], centred.shape[-1]
        rows = centred.reshape(count, -1, depth)
        return np.stack([first_direction(matrix) for matrix in rows]) if count else np.zeros((0, depth))

    def terms(self, found: LayerPass, weights: np.ndarray) -> np.ndarray:
        return _centred(found.activation) * weights[:, None, None, :]

    def shares(self, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.abs(weights)


def _centred(activation: np.ndarray) -> np.ndarray:
    """float64 (N, h, w, C): each image's maps minus their mean over positions."""
    count, height, width, depth = activation.shape
    rows = activation.reshape(count, height * width, depth)
    return (rows - rows.mean(axis=1, keepdims=True)).reshape(activation.shape)


def first_direction(matrix: np.ndarray) -> np.ndarray:
    """float64 (C,): the first right singular vector of a (P, C) matrix, its entries summing to >= 0
    (zeros for an all-zero matrix).

    A singular vector's sign is arbitrary; turned so that its entries sum to at
    least zero, the projection rises where the channels are active overall (its
    correlation with the sum of the channels is then never negative).

    Worked out from the eigenvectors of the smaller Gram matrix (P x P or C x C) with
    TensorFlow's solver: numpy's SVD goes through OpenBLAS, whose threads spin
    against each other on a busy CPU (2 to 5 s for a 324 x 512 map on two shared
    cores, against 0.2 s here).
    """
    import tensorflow as tf

    if not matrix.any():
        return np.zeros(matrix.shape[1])
    rows, cols = matrix.shape
    gram = matrix @ matrix.T if rows < cols else matrix.T @ matrix
    values, vectors = (np.asarray(t) for t in tf.linalg.eigh(tf.constant(gram, dtype=tf.float64)))
    top = vectors[:, -1]  # eigenvalues come in ascending order
    direction = matrix.T @ top if rows < cols else top
    direction = direction / np.linalg.norm(direction)
    return direction if direction.sum() >= 0 else -direction
