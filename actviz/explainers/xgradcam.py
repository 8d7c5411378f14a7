"""XGrad-CAM (Fu et al. 2020): w_k = sum_ij (A_k / sum_ij A_k) dS/dA_k, the gradient averaged
where the channel is active, so the map follows the score more closely."""

from __future__ import annotations

import numpy as np

from .cam import CAM, LayerPass


class XGradCAM(CAM):
    def weights(self, found: LayerPass) -> np.ndarray:
        activation = found.activation
        total = activation.sum(axis=(1, 2), keepdims=True)
        share = np.divide(activation, total, out=np.zeros_like(activation), where=total != 0)
        return (share * found.gradients).sum(axis=(1, 2))
