"""LayerCAM (Jiang et al. 2021): map = sum_k relu(dS/dA_k) * A_k, element by element; works at
early layers too. The weight reported for a channel is the mean of its positive gradient."""

from __future__ import annotations

import numpy as np

from .cam import CAM, LayerPass


class LayerCAM(CAM):
    def weights(self, found: LayerPass) -> np.ndarray:
        return np.maximum(found.gradients, 0.0).mean(axis=(1, 2))

    def terms(self, found: LayerPass, weights: np.ndarray) -> np.ndarray:
        return np.maximum(found.gradients, 0.0) * found.activation
