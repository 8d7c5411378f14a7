"""How much the class's answer depends on each concept, measured faithfully: remove the concept's
part from the layer's activations, run the rest of the network (``probe.head_model``) on what
remains, and read how far the class score falls.

An image's activations ``A`` (h, w, C) at the layer are read in the concepts as ``U`` (h, w, K)
(``factorise.project`` of its positive part ``P = max(A, 0)``); concept k's part is the outer
product ``U[..., k] w_k`` (h, w, C). *Removing* it subtracts it from ``A``, but never more than
the layer had there: ``A - min(U_k w_k, P)``. A ReLU layer thus stays >= 0 (the values the rest
of the network was trained on) and a layer with negative values keeps them; what NMF did not
reconstruct (the residual) is left in place, so the drop is the concept's alone. The class
score is the logit (``classes.class_score``).

This is CRAFT's "importance as the effect of removing the concept" (its Sobol indices measure
the same effect averaged over random masks of all the other concepts, at 32 x (K + 2) passes of
the head per image; removal takes K + 1 and answers the question a clinician asks: "what if this
were not there?").

**Baseline**: the same removal with each concept's direction replaced by a random non-negative
unit direction (the same map ``U_k``, so the removed part has the same norm before clipping):
a concept matters only if removing it lowers the score far more than removing a random part of
equal size. **All concepts**: removing every concept's part at once says how much of the score
the concepts account for together.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .classes import class_score
from .layer import run_chunked


def random_directions(count: int, channels: int, *, seed: int = 0) -> np.ndarray:
    """float32 (count, channels): non-negative random unit vectors (the baseline's directions),
    the same for the same seed."""
    rng = np.random.default_rng([int(seed), 0x0C0C])
    directions = np.abs(rng.standard_normal((int(count), int(channels))))
    return (directions / np.linalg.norm(directions, axis=1, keepdims=True)).astype(np.float32)


def variant_count(concepts: int) -> int:
    """Stacks through the head per image: the image itself, each concept removed, each random
    direction removed, all concepts removed."""
    return 2 * int(concepts) + 2


def removed(activation: np.ndarray, positive: np.ndarray, coefficients: np.ndarray, directions: np.ndarray, which: int) -> np.ndarray:
    """One image's activations with one part removed: ``activation`` float32 (h, w, C),
    ``positive`` its positive part, ``coefficients`` float32 (h, w, K), ``directions`` (2K, C)
    (the concepts, then the random directions); ``which``: 0 nothing, 1..2K that direction's
    part, 2K + 1 every concept's part. -> float32 (h, w, C)."""
    count = len(directions) // 2
    if which == 0:
        return activation
    if which == 2 * count + 1:
        part = np.einsum("hwk,kc->hwc", coefficients, directions[:count])
    else:
        k = which - 1
        part = coefficients[..., k % count, None] * directions[k][None, None, :]
    return activation - np.minimum(part, positive)


def removal_scores(
    head: Callable, activations: np.ndarray, coefficients: np.ndarray, concepts: np.ndarray, randoms: np.ndarray,
    images: np.ndarray, class_index: int, chunk: int,
) -> np.ndarray:
    """float64 (n, 2K + 2): the class score of each image with each variant of its activations
    (``variant_count``: as they are, each concept removed, each random direction removed, all
    concepts removed), through ``head`` (``layer.head_logits``) in stacks of ``chunk``.

    ``activations`` float32 (n, h, w, C); ``coefficients`` float32 (n, h, w, K); ``concepts`` and
    ``randoms`` float32 (K, C); ``images`` float32 (n, H, W, C) the model inputs (read only by a
    head with a connection around the layer). The inputs are not changed.
    """
    count, variants = len(activations), variant_count(len(concepts))
    directions = np.concatenate([concepts, randoms]).astype(np.float32)
    positive = np.maximum(activations, 0.0)
    pairs = [(i, v) for i in range(count) for v in range(variants)]
    scores = np.zeros(len(pairs), np.float64)
    for start in range(0, len(pairs), chunk):  # the stacks are built a chunk at a time: memory stays at one chunk
        group = pairs[start : start + chunk]
        stack = np.stack([removed(activations[i], positive[i], coefficients[i], directions, v) for i, v in group])
        (logits,) = run_chunked(head, [stack, images[[i for i, _ in group]]], chunk)
        scores[start : start + len(group)] = np.asarray(class_score(logits.reshape(len(group), -1), class_index), np.float64)
    return scores.reshape(count, variants)


def drops(scores: np.ndarray) -> dict:
    """What ``removal_scores`` (n, 2K + 2) says, per image: ``score`` float64 (n,) the class
    score; ``drop`` (n, K) its fall when each concept is removed; ``random`` (n, K) when each
    random direction is; ``all`` (n,) when every concept is."""
    count = (scores.shape[1] - 2) // 2
    score = scores[:, 0]
    return {
        "score": score,
        "drop": score[:, None] - scores[:, 1 : 1 + count],
        "random": score[:, None] - scores[:, 1 + count : 1 + 2 * count],
        "all": score - scores[:, -1],
    }
