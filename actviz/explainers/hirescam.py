"""HiResCAM (Draelos & Carin 2020): map = sum_k dS/dA_k * A_k, element by element, so the map
shows exactly what the score adds up. The weight reported for a channel is its mean gradient."""

from __future__ import annotations

import numpy as np

from .cam import CAM, LayerPass


class HiResCAM(CAM):
    def weights(self, found: LayerPass) -> np.ndarray:
        return found.gradients.mean(axis=(1, 2))

    def terms(self, found: LayerPass, weights: np.ndarray) -> np.ndarray:
        return found.gradients * found.activation
