"""Removing a concept's part and reading the class score through the rest of the network, against
a closed form on a linear head (global average pooling and a dense layer, weights by hand)."""

from __future__ import annotations

import numpy as np

from actviz.concepts.importance import drops, random_directions, removal_scores, removed, variant_count

WEIGHTS = np.array([[2.0, -1.0], [0.5, 0.0], [-1.0, 1.0]])  # (channels, classes)
BIAS = np.array([0.1, -0.2])


def _head(maps, images):
    """The rest of the network, by hand: global average pooling then a dense layer -> logits."""
    return [np.asarray(maps, np.float64).mean(axis=(1, 2)) @ WEIGHTS + BIAS]


def test_scores_with_each_part_removed_follow_the_closed_form(rng):
    activations = rng.normal(size=(3, 4, 5, 3)).astype(np.float32)  # negative values too: a layer without ReLU
    coefficients = np.abs(rng.normal(size=(3, 4, 5, 2))).astype(np.float32)
    concepts = np.abs(rng.normal(size=(2, 3))).astype(np.float32)
    randoms = random_directions(2, 3, seed=1)
    before = activations.copy()
    scores = removal_scores(_head, activations, coefficients, concepts, randoms, np.zeros((3, 1, 1, 1), np.float32), 0, chunk=4)
    np.testing.assert_array_equal(activations, before)
    assert scores.shape == (3, variant_count(2))
    positive = np.maximum(activations, 0)
    for i in range(3):
        def score(a):
            return a.mean(axis=(0, 1)) @ WEIGHTS[:, 0] + BIAS[0]

        expected = [score(activations[i])]
        for directions in (concepts, randoms):
            for k in range(2):
                part = coefficients[i, :, :, k, None] * directions[k]
                expected.append(score(activations[i] - np.minimum(part, positive[i])))
        everything = np.einsum("hwk,kc->hwc", coefficients[i], concepts)
        expected.append(score(activations[i] - np.minimum(everything, positive[i])))
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5, atol=1e-6)
    found = drops(scores)
    np.testing.assert_allclose(found["drop"], scores[:, :1] - scores[:, 1:3])
    np.testing.assert_allclose(found["random"], scores[:, :1] - scores[:, 3:5])
    np.testing.assert_allclose(found["all"], scores[:, 0] - scores[:, 5])


def test_a_relu_layer_stays_non_negative_and_nothing_is_removed_twice(rng):
    activation = np.abs(rng.normal(size=(2, 2, 3))).astype(np.float32)
    coefficients = np.full((2, 2, 1), 100.0, np.float32)  # far more than the layer holds
    directions = np.ones((2, 3), np.float32)
    gone = removed(activation, activation, coefficients, directions, 1)
    np.testing.assert_array_equal(gone, np.zeros_like(activation))
    np.testing.assert_array_equal(removed(activation, activation, coefficients, directions, 0), activation)


def test_random_directions_are_seeded_non_negative_unit_vectors():
    first = random_directions(4, 7, seed=3)
    np.testing.assert_array_equal(first, random_directions(4, 7, seed=3))
    assert (first >= 0).all() and not np.array_equal(first, random_directions(4, 7, seed=4))
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
