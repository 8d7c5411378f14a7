"""SmoothGrad (Smilkov et al. 2017) as a noise tunnel (after captum's ``NoiseTunnel``): any
one-pass gradient method averaged over copies of the image with noise added,
x + noise, noise ~ N(0, (noise * (max x - min x))^2); SmoothGrad is the tunnel over Saliency.
"""

from __future__ import annotations

import numpy as np

from .attributions import Attribution, InputPass
from .saliency import Saliency


class NoiseTunnel(Attribution):
    """``inner``'s attribution (its ``local``) averaged over ``samples`` noisy copies of each image."""

    inner: type[Attribution] = Saliency
    gradient_at_image = False

    def attribute(self, found: InputPass, *, samples: int, noise: float, seed: int) -> np.ndarray:
        """The noise of copy j of image n comes from ``default_rng((seed, n, j))``, so the result
        does not depend on how the copies are stacked."""
        batch = found.batch
        spread = noise * (batch.max(axis=(1, 2, 3)) - batch.min(axis=(1, 2, 3)))

        def make(images: np.ndarray, numbers: np.ndarray) -> np.ndarray:
            return np.stack([
                batch[n] + np.random.default_rng((seed, int(n), int(j))).normal(0.0, spread[n], batch.shape[1:]).astype(np.float32)
                for n, j in zip(images, numbers)
            ])

        return self.average(batch, found.target, samples, make, local=self.inner.local)


class SmoothGrad(NoiseTunnel):
    """The noise tunnel over Saliency: the mean gradient over noisy copies."""
