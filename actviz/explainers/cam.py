"""The base of every class activation map (after pytorch-grad-cam's ``base_cam.py``): one forward
pass for the layer's maps and the class scores, one backward pass for the class score's gradient
at the layer (for the methods that read it), the method's channel weights, and the map they make.

For a layer with maps A (N, h, w, K) and the class score S (the logit, see ``core.target``),
the map is sum_k term_k, with term_k = w_k A_k unless the method weighs each position on its
own. A method is a subclass that overrides ``weights`` (and ``terms`` for per-position
weighing), in a file of its own; the registry's entry shows the map through a ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..core.batches import batch_size, head_batch_size, slices
from ..core.probe import Probe
from ..core.target import Target
from ..errors import LayerNotFoundError
from .base import Explainer
from .result import Explanation


@dataclass(frozen=True)
class LayerPass:
    """What a class activation map is made from, for N images at one layer.

    ``batch``: float32 (N, H, W, C), the model inputs; ``layer``: the layer's name;
    ``activation``: float64 (N, h, w, K), the layer's maps A; ``gradients``: float64
    (N, h, w, K), dS/dA (None for a method that reads none); ``logits``: (N, classes);
    ``target``: the class score; ``details``: numbers a method keeps beside its map.
    """

    batch: np.ndarray
    layer: str
    activation: np.ndarray
    gradients: np.ndarray | None
    logits: np.ndarray
    target: Target
    details: dict = field(default_factory=dict)


class CAM(Explainer):
    """A class activation map at ``self.layer``: override ``weights`` (N, K)."""

    #: Whether the method reads the class score's gradient at the layer (one backward pass).
    gradients = True

    def explain(self, batch: np.ndarray, class_index: int | Sequence[int] | None = None, **settings: Any) -> Explanation:
        """Maps float32 (N, h, w) at the layer's size, with each channel's weight and their ranking."""
        name = self.layer.name
        activation, logits, outputs = first_pass(self.probe, batch, name)
        target = Target.choose(outputs, class_index)
        gradients = layer_gradients(self.probe, batch, name, activation, target) if self.gradients else None
        found = LayerPass(batch, name, activation, gradients, logits, target)
        weights = self.weights(found, **settings)
        terms = self.terms(found, weights)
        shares = self.shares(terms, weights)
        return self.result(
            batch, target, logits, outputs, terms.sum(axis=-1), settings=settings, weights=weights.astype(np.float32),
            shares=shares.astype(np.float32), ranking=np.argsort(-shares, axis=1, kind="stable"), details=found.details,
        )

    def weights(self, found: LayerPass, **settings: Any) -> np.ndarray:
        """float64 (N, K): each channel's weight."""
        raise NotImplementedError

    def terms(self, found: LayerPass, weights: np.ndarray) -> np.ndarray:
        """float64 (N, h, w, K): each channel's term of the map, w_k A_k (the map is their sum)."""
        return found.activation * weights[:, None, None, :]

    def shares(self, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """float64 (N, K): each channel's share of the map, by which channels are ranked."""
        return terms.sum(axis=(1, 2))


def first_pass(probe: Probe, batch: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forward pass: the layer's maps float64 (N, h, w, C), the logits (N, K) and the probabilities (N, ...)."""
    size = batch_size(probe, batch.shape[1:], keep=[name], requested=len(batch))
    model = probe.score_model(name)
    parts = [[np.asarray(t) for t in model(batch[part], training=False)] for part in slices(len(batch), size)]
    activation, logits, probabilities = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return activation.astype(np.float64), logits.reshape(len(batch), -1), probabilities


def layer_gradients(probe: Probe, batch: np.ndarray, name: str, activation: np.ndarray, target: Target) -> np.ndarray:
    """float64 (N, h, w, C): the gradient of each image's class score with respect to the layer's map.

    The map is fed to the part of the network after the layer (``Probe.head_model``),
    so the backward pass runs through that part only and nothing below the layer
    is kept alive for it.
    """
    import tensorflow as tf

    head, takes_image = probe.head_model(name)
    size = head_batch_size(probe, batch.shape[1:], name, takes_image=takes_image, backward=True, requested=len(batch))
    grads = []
    for part in slices(len(batch), size):
        feature = tf.constant(activation[part], dtype=tf.float32)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(feature)
            logits, _ = head([tf.constant(batch[part]), feature] if takes_image else feature, training=False)
            score = tf.reduce_sum(target[part](logits))
        gradient = tape.gradient(score, feature)
        if gradient is None:  # the layer does not lead to the output (a side branch)
            raise LayerNotFoundError(f"The layer '{name}' does not lead to the model's prediction, so it has no class activation map.")
        grads.append(np.asarray(gradient, dtype=np.float64))
    return np.concatenate(grads)
