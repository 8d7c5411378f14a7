"""Gradient x Input (Shrikumar et al. 2016): x * dS/dx, a first-order estimate of each pixel's
share of the score, from one forward and backward pass."""

from __future__ import annotations

import numpy as np

from .attributions import Attribution


class GradientXInput(Attribution):
    @staticmethod
    def local(inputs: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        return inputs * gradients
