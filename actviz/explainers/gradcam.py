"""Grad-CAM (Selvaraju et al. 2017): each channel weighted by the average gradient of the class
score over it, w_k = mean_ij dS/dA_k."""

from __future__ import annotations

import numpy as np

from .cam import CAM, LayerPass


class GradCAM(CAM):
    def weights(self, found: LayerPass) -> np.ndarray:
        # a vector where each entry is the mean intensity of the gradient over one channel
        return found.gradients.mean(axis=(1, 2))
