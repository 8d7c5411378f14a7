"""Grad-CAM++ (Chattopadhay et al. 2018): alpha = g^2 / (2 g^2 + sum_ij(A_k) g^3),
w_k = sum_ij alpha relu(g), with g = dS/dA_k: every region supporting the class counts, not only
the strongest.

The closed form takes exp(S) as the class score (the paper's eq. 19), as pytorch-grad-cam does;
tf-keras-vis divides alpha by its sum over positions, as the paper's authors' code does.
"""

from __future__ import annotations

import numpy as np

from .cam import CAM, LayerPass


class GradCAMPlusPlus(CAM):
    def weights(self, found: LayerPass) -> np.ndarray:
        gradients, activation = found.gradients, found.activation
        g2, g3 = gradients**2, gradients**3
        denominator = 2.0 * g2 + activation.sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
        return (alpha * np.maximum(gradients, 0.0)).sum(axis=(1, 2))
