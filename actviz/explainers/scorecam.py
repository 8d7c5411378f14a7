"""Score-CAM (Wang et al. 2020): no gradients; each channel weighed by the class probability of
the image lit only where the channel is active, M_k = normalise(upsample(A_k)) to 0..1,
w_k = P(class | x * M_k). With ``channels``, only the channels whose maps vary most (Faster
Score-CAM); the others weigh 0.
"""

from __future__ import annotations

import numpy as np

from ..core.batches import Progress, batch_size, report, slices
from ..core.passes import class_logits
from ..core.probe import Probe
from ..core.target import Target
from .cam import CAM, LayerPass
from .result import upsample

#: Added to the span of a channel before scaling it to 0..1, as tf-keras-vis does (Keras' epsilon):
#: a constant channel becomes an all-zero mask instead of a division by zero.
MASK_EPSILON = 1e-7


class ScoreCAM(CAM):
    gradients = False

    def weights(self, found: LayerPass, *, channels: int | None = None) -> np.ndarray:
        return score_cam_weights(self.probe, found.batch, found.activation, found.target, channels=channels,
                                 requested=self.batch_size, progress=self.progress)


def score_cam_weights(
    probe: Probe, batch: np.ndarray, activation: np.ndarray, target: Target, *, channels: int | None = None,
    requested: int | None = None, progress: Progress | None = None,
) -> np.ndarray:
    """float64 (N, C): Score-CAM's weight of each channel, the class probability of the image lit by it.

    For each image and channel, the channel's map is resized to the image
    (bilinear, corners aligned) and scaled to 0..1; the image times that mask
    goes through the model. The masked images are stacked as many per pass as
    memory allows. A constant channel gives an all-zero mask, so all of an
    image's constant channels share one pass.
    """
    count, _, _, depth = activation.shape
    used = varying_channels(activation, channels)
    constant = activation.max(axis=(1, 2)) == activation.min(axis=(1, 2))
    jobs = [(n, k) for n in range(count) for k in range(depth) if used[n, k] and not constant[n, k]]
    jobs += [(n, -1) for n in range(count) if (used[n] & constant[n]).any()]  # one all-zero mask per image
    height, width, colours = batch.shape[1:]
    size = batch_size(probe, batch.shape[1:], requested=requested, extra_bytes=4 * height * width * (colours + 1))
    found = np.zeros(len(jobs))
    for part in slices(len(jobs), size):
        images = np.array([n for n, _ in jobs[part]])
        picked = np.array([max(k, 0) for _, k in jobs[part]])
        maps = activation[images, :, :, picked] * np.array([k >= 0 for _, k in jobs[part]])[:, None, None]
        masks = upsample(maps[..., None], (height, width))
        low = masks.min(axis=(1, 2, 3), keepdims=True)
        high = masks.max(axis=(1, 2, 3), keepdims=True)
        masks = (masks - low) / (high - low + MASK_EPSILON)
        found[part] = target[images].probabilities(class_logits(probe, batch[images] * masks))
        report(progress, part.stop, len(jobs))
    weights = np.zeros((count, depth))
    for (n, k), value in zip(jobs, found):
        if k >= 0:
            weights[n, k] = value
        else:
            weights[n, used[n] & constant[n]] = value
    return weights


def varying_channels(activation: np.ndarray, channels: int | None) -> np.ndarray:
    """bool (N, C): the channels Score-CAM uses: all (None), or the ``channels`` whose maps vary most."""
    count, depth = activation.shape[0], activation.shape[-1]
    if channels is None:
        return np.ones((count, depth), dtype=bool)
    spread = activation.std(axis=(1, 2))
    keep = np.zeros((count, depth), dtype=bool)
    top = np.argsort(-spread, axis=1, kind="stable")[:, : int(channels)]
    np.put_along_axis(keep, top, True, axis=1)
    return keep
