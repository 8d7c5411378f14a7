"""Occlusion sensitivity on a model whose class score is linear in known pixels."""

import numpy as np
import pytest

from actviz.errors import ChoiceError
from actviz.explainers.explain import explain
from actviz.explainers.occlusion import patch_positions
from actviz.core.probe import Probe


@pytest.fixture(scope="module")
def pixel_model(keras):
    """5x6x2 input; conv 1x1 identity (a spatial layer), Flatten, Dense(2, softmax) with known weights
    W (60, 2): logit_c = sum_p W[p, c] x_p, linear in the pixels."""
    inputs = keras.Input((5, 6, 2))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, activation="softmax", use_bias=False, name="probs")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    conv.set_weights([np.eye(2, dtype=np.float32).reshape(1, 1, 2, 2)])
    weights = np.random.default_rng(7).normal(0, 1, (60, 2)).astype(np.float32)
    dense.set_weights([weights])
    return model, weights.reshape(5, 6, 2, 2)


def test_occlusion_one_pixel_patches_give_each_pixels_share(pixel_model, rng):
    model, W = pixel_model
    x = rng.random((2, 5, 6, 2), dtype=np.float32)
    result = explain(Probe(model), x, method="occlusion", class_index=[0, 1], patch=1, stride=1, fill=0.0)
    for n, c in ((0, 0), (1, 1)):
        np.testing.assert_allclose(result.raw[n], (W[..., c] * x[n]).sum(-1), rtol=1e-4, atol=1e-5)
    assert result.raw.shape == (2, 5, 6) and result.details["windows"] == 30


def test_occlusion_overlapping_patches_against_plain_loops(pixel_model, rng):
    model, W = pixel_model
    x = rng.random((1, 5, 6, 2), dtype=np.float32)
    black = np.array([-0.5, 0.25], np.float32)
    result = explain(Probe(model), x, method="occlusion", class_index=1, patch=3, stride=2, fill="black", black=black, batch_size=4)
    total, covered = np.zeros((5, 6)), np.zeros((5, 6))
    for top in (0, 2):          # rows 0..2, 2..4 (the last flush with the edge)
        for left in (0, 2, 3):  # columns 0..2, 2..4, 3..5
            drop = (W[top:top + 3, left:left + 3, :, 1] * (x[0, top:top + 3, left:left + 3] - black)).sum()
            total[top:top + 3, left:left + 3] += drop
            covered[top:top + 3, left:left + 3] += 1
    np.testing.assert_allclose(result.raw[0], total / covered, rtol=1e-4, atol=1e-5)
    positive = np.maximum(total / covered, 0)
    np.testing.assert_allclose(result.heatmap[0], positive / positive.max(), rtol=1e-4, atol=1e-6)
    mean = explain(Probe(model), x, method="occlusion", class_index=1, patch=5, stride=5, fill="mean")
    drop = (W[:, :5, :, 1] * (x[0, :, :5] - x[0].mean(axis=(0, 1)))).sum()
    np.testing.assert_allclose(mean.raw[0, :, 0], drop, rtol=1e-4)


def test_patch_positions_and_mistakes(pixel_model, rng):
    assert patch_positions(10, 3, 3) == [0, 3, 6, 7]
    assert patch_positions(9, 3, 3) == [0, 3, 6]
    assert patch_positions(5, 5, 1) == [0]
    model, _ = pixel_model
    x = rng.random((1, 5, 6, 2), dtype=np.float32)
    default = explain(Probe(model), x, method="occlusion")
    assert default.settings["patch"] == 1 and default.settings["stride"] == 1  # an eighth of 5 pixels, at least 1
    with pytest.raises(ChoiceError, match="from 1 to 5"):
        explain(Probe(model), x, method="occlusion", patch=6)
    with pytest.raises(ChoiceError, match="Unknown fill"):
        explain(Probe(model), x, method="occlusion", fill="grey")
