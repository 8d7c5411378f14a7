"""Ablation-CAM (Desai & Ramaswamy 2020): no gradients; each channel switched off in turn,
w_k = (S - S_k) / |S|, S_k the class score with channel k set to 0. The scores with each channel
off are kept in the result's ``details["ablated_scores"]``.
"""

from __future__ import annotations

import numpy as np

from ..core.batches import Progress, head_batch_size, report, slices
from ..core.passes import ablated_logits
from ..core.probe import Probe
from ..core.target import Target
from .cam import CAM, LayerPass


class AblationCAM(CAM):
    gradients = False

    def weights(self, found: LayerPass) -> np.ndarray:
        weights, scores = ablation_weights(self.probe, found.batch, found.layer, found.activation, found.logits, found.target,
                                           requested=self.batch_size, progress=self.progress)
        found.details["ablated_scores"] = scores.astype(np.float32)
        return weights


def ablation_weights(
    probe: Probe, batch: np.ndarray, name: str, activation: np.ndarray, logits: np.ndarray, target: Target, *,
    requested: int | None = None, progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ablation-CAM's weights float64 (N, C), and the class score with each channel switched off (N, C).

    Each channel of the layer's map is set to zero in turn and the rest of the
    network (``Probe.head_model``) gives the class score S_k; the weight is
    (S - S_k) / |S|. The paper divides by S; dividing by its size keeps the
    meaning when the score is negative (a class the model did not choose),
    where dividing by S would turn every weight's sign around. A channel that
    is zero everywhere changes nothing: its weight is 0 without a pass.
    Copies of the map are made in the graph, as many per pass as memory allows.
    """
    count, depth = activation.shape[0], activation.shape[-1]
    score = target.scores(logits)
    scores = np.repeat(score[:, None], depth, axis=1)
    _, takes_image = probe.head_model(name)
    size = head_batch_size(probe, batch.shape[1:], name, takes_image=takes_image, requested=requested)
    maps = activation.astype(np.float32)
    live = [np.nonzero(maps[n].reshape(-1, depth).any(axis=0))[0] for n in range(count)]
    total, done = sum(len(k) for k in live), 0
    for n in range(count):
        for part in slices(len(live[n]), size):
            picked = live[n][part]
            out = ablated_logits(probe, name, maps[n], picked, batch[n] if takes_image else None)
            scores[n, picked] = target[np.full(len(picked), n)].scores(out)
            done += len(picked)
            report(progress, done, total)
    size_of_score = np.where(np.abs(score) > 1e-12, np.abs(score), 1.0)[:, None]
    return (score[:, None] - scores) / size_of_score, scores
