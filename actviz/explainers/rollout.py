"""Attention rollout (Abnar & Zuidema 2020): how much each patch flows into a vision transformer's
class token through all its attention layers. For each layer the heads' probabilities are
averaged, the skip connection is added as the identity (A + I), each row is renormalised to sum
to 1, and the layers are multiplied from the first to the last: R = Â_L ... Â_1. The map is the
class token's row of R over the patch tokens, laid out as their grid. No gradients and no class:
the same map for every class.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.batches import batch_size, slices
from ..core.target import Target
from ..errors import LayerNotFoundError
from .base import Explainer
from .result import Explanation


class AttentionRollout(Explainer):
    def explain(self, batch: np.ndarray, class_index: int | Sequence[int] | None = None, **settings: Any) -> Explanation:
        """float32 (N, H, W, C), preprocessed -> maps float32 (N, h, w) at the patch grid's size."""
        layers = self.probe.attention_layers
        if not layers:
            raise LayerNotFoundError(
                "Attention rollout follows a vision transformer's attention layers; this model has none (for a "
                "convolutional network, use a class activation map such as Grad-CAM)."
            )
        grid = next((info for info in reversed(self.probe.table.rows) if info.tokens is not None), None)
        if grid is None:
            raise LayerNotFoundError("This transformer's tokens could not be laid out as a grid of patches, so there is no map to draw.")
        logits, outputs, scores = _attention_pass(self.probe, batch, self.batch_size)
        target = Target.choose(outputs, class_index)
        flow = rollout(scores)
        height, width = grid.output_shape[:2]
        patches = flow[:, 0, grid.tokens:].reshape(len(batch), height, width)
        return self.result(batch, target, logits, outputs, patches, settings=settings)


def _attention_pass(probe: Any, batch: np.ndarray, requested: int | None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One forward pass: the logits (N, K), the probabilities (N, ...) and each attention layer's
    probabilities float64 (N, heads, T, T), as many images per pass as memory allows."""
    model = probe.attention_model()
    kept = sum(4 * int(np.prod(tensor.shape[1:])) for tensor in model.outputs[2:])
    size = batch_size(probe, batch.shape[1:], requested=requested, extra_bytes=kept)
    parts = [[np.asarray(t) for t in model(batch[part], training=False)] for part in slices(len(batch), size)]
    logits, outputs, *scores = (np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))
    return logits.reshape(len(batch), -1), outputs, [s.astype(np.float64) for s in scores]


def rollout(scores: Sequence[np.ndarray]) -> np.ndarray:
    """float64 (N, T, T): how much each token (column) flows into each token (row) through every
    attention layer, from each layer's probabilities float (N, heads, T, T), first layer first.

    >>> half = np.full((1, 1, 2, 2), 0.5)
    >>> rollout([half, half])[0]
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    flow = None
    for probabilities in scores:
        mixed = np.asarray(probabilities, dtype=np.float64).mean(axis=1)
        mixed = mixed + np.eye(mixed.shape[-1])  # the skip connection around the attention
        mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        flow = mixed if flow is None else mixed @ flow
    if flow is None:
        raise LayerNotFoundError("Attention rollout needs at least one attention layer.")
    return flow
