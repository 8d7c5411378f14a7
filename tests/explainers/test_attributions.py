"""Pixel attributions against exact answers (a model linear in its pixels), tf.GradientTape on the
flattened model, an explicit SmoothGrad loop, and Integrated Gradients' completeness."""

import numpy as np
import pytest

from actviz.explainers.attributions import black_input, blurred
from actviz.errors import Cancelled, ChoiceError
from actviz.explainers.explain import explain
from actviz.explainers.integrated_gradients import baseline_images
from actviz.explainers.registry import METHOD_INFO
from actviz.core.probe import Probe

ATTRIBUTIONS = [name for name, info in METHOD_INFO.items() if info.family == "gradient"]


@pytest.fixture(scope="module")
def linear_model(keras):
    """4x5x2 input; conv 1x1 with kernel [[1, 2], [-1, 3]] (channels -> channels) and no bias; GAP;
    Dense(2, softmax) with W = [[1, 0], [0, 1]] and bias [0.5, -0.5]: logit_c = mean_ij (x_ij . a_c) + b_c,
    a_0 = [1, -1], a_1 = [2, 3]. The gradient of logit_c is a_c / 20 at every pixel."""
    inputs = keras.Input((4, 5, 2))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, activation="softmax", name="probs")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))))
    conv.set_weights([np.array([[1.0, 2.0], [-1.0, 3.0]], np.float32).reshape(1, 1, 2, 2)])
    dense.set_weights([np.eye(2, dtype=np.float32), np.array([0.5, -0.5], np.float32)])
    return model


A = {0: np.array([1.0, -1.0]), 1: np.array([2.0, 3.0])}


def test_linear_model_exact_attributions(linear_model, rng):
    x = rng.random((2, 4, 5, 2), dtype=np.float32)
    probe = Probe(linear_model)
    for c in (0, 1):
        gradient = np.broadcast_to(A[c] / 20, x.shape)
        saliency = explain(probe, x, method="saliency", class_index=c)
        np.testing.assert_allclose(saliency.attributions, gradient, rtol=1e-6)
        np.testing.assert_allclose(saliency.raw, gradient.sum(-1), rtol=1e-6)
        assert saliency.raw.shape == (2, 4, 5) and saliency.raw.dtype == np.float32 and saliency.layer is None
        product = explain(probe, x, method="gradient-x-input", class_index=c)
        np.testing.assert_allclose(product.attributions, x * gradient, rtol=1e-6)
        # linear model: Integrated Gradients from black (0) is exactly gradient x input, SmoothGrad the gradient
        integrated = explain(probe, x, method="integrated-gradients", class_index=c, steps=3)
        np.testing.assert_allclose(integrated.attributions, x * gradient, rtol=1e-5)
        np.testing.assert_allclose(integrated.details["completeness_gap"], 0.0, atol=1e-5)
        smooth = explain(probe, x, method="smoothgrad", class_index=c, samples=3)
        np.testing.assert_allclose(smooth.attributions, gradient, rtol=1e-5)
    # a baseline other than zero: (x - x') * gradient
    start = np.full(x.shape[1:], 0.25, np.float32)
    shifted = explain(probe, x, method="integrated-gradients", class_index=1, steps=2, baseline=start)
    np.testing.assert_allclose(shifted.attributions, (x - 0.25) * A[1] / 20, rtol=1e-5, atol=1e-8)


def test_saliency_against_gradient_tape_on_flattened_model(keras, nested_model, nested_base_flat, rng):
    import tensorflow as tf

    inputs, x = nested_base_flat
    dense = nested_model.get_layer("probs")
    twin = keras.layers.Dense(2)  # the same dense layer without its softmax: the logits
    flat = keras.Model(inputs, twin(nested_model.get_layer("gap")(x)))
    twin.set_weights(dense.get_weights())
    batch = rng.random((3, 32, 32, 3), dtype=np.float32)
    classes = [1, 0, 1]
    image = tf.constant(batch)
    with tf.GradientTape() as tape:
        tape.watch(image)
        logits = flat(image)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    expected = tape.gradient(score, image).numpy()
    ours = explain(Probe(nested_model), batch, method="saliency", class_index=classes)
    np.testing.assert_allclose(ours.attributions, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    product = explain(Probe(nested_model), batch, method="gradient-x-input", class_index=classes, batch_size=1)
    np.testing.assert_allclose(product.attributions, expected * batch, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_array_equal(ours.class_index, classes)
    predicted = explain(Probe(nested_model), batch, method="saliency")
    np.testing.assert_array_equal(predicted.class_index, np.asarray(nested_model(batch)).argmax(axis=1))


def smooth_model(keras):
    """A small model with smooth activations (tanh, softplus), so the path integral is well behaved."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="tanh", name="c1")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="softplus", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))


def test_integrated_gradients_completeness_within_one_percent_at_64_steps(keras, rng):
    import tensorflow as tf

    model = smooth_model(keras)
    probe = Probe(model)
    x = rng.normal(0, 1.5, (2, 6, 6, 2)).astype(np.float32)
    for baseline in ("black", "blur", "noise"):
        result = explain(probe, x, method="integrated-gradients", class_index=[0, 2], steps=64, baseline=baseline, batch_size=10)
        assert (result.details["completeness_gap"] < 0.01).all(), (baseline, result.details["completeness_gap"])
        # the score change the gap is measured against, computed independently
        twin = keras.layers.Dense(3)
        logits = keras.Model(model.inputs, twin(model.layers[-2].output))
        twin.set_weights(model.get_layer("probs").get_weights())
        start = baseline_images(x, baseline, seed=0)
        change = logits(x).numpy()[[0, 1], [0, 2]] - logits(start).numpy()[[0, 1], [0, 2]]
        np.testing.assert_allclose(result.details["score"] - result.details["baseline_score"], change, rtol=1e-4)
        assert abs(result.attributions.sum(axis=(1, 2, 3)) - change).max() <= 0.01 * np.abs(change).max()
    # the midpoint rule written as a loop with one tape per step
    start = np.zeros_like(x[:1])
    grads = []
    for k in range(8):
        point = tf.constant(start + (k + 0.5) / 8 * (x[:1] - start))
        with tf.GradientTape() as tape:
            tape.watch(point)
            score = logits(point)[0, 1]
        grads.append(tape.gradient(score, point).numpy())
    expected = (x[:1] - start) * np.mean(grads, axis=0)
    ours = explain(probe, x[:1], method="integrated-gradients", class_index=1, steps=8)
    np.testing.assert_allclose(ours.attributions, expected, rtol=1e-4, atol=1e-7)


def test_smoothgrad_against_explicit_loop(keras, rng):
    import tensorflow as tf

    model = smooth_model(keras)
    x = rng.random((2, 6, 6, 2), dtype=np.float32)
    twin = keras.layers.Dense(3)
    logits = keras.Model(model.inputs, twin(model.layers[-2].output))
    twin.set_weights(model.get_layer("probs").get_weights())
    ours = explain(Probe(model), x, method="smoothgrad", class_index=2, samples=5, noise=0.1, seed=3, batch_size=3)
    for n in range(2):
        spread = 0.1 * (x[n].max() - x[n].min())
        total = np.zeros(x.shape[1:])
        for j in range(5):
            noisy = x[n] + np.random.default_rng((3, n, j)).normal(0.0, spread, x.shape[1:]).astype(np.float32)
            point = tf.constant(noisy[None])
            with tf.GradientTape() as tape:
                tape.watch(point)
                score = logits(point)[0, 2]
            total += tape.gradient(score, point).numpy()[0]
        np.testing.assert_allclose(ours.attributions[n], total / 5, rtol=1e-4, atol=1e-7)
    again = explain(Probe(model), x, method="smoothgrad", class_index=2, samples=5, noise=0.1, seed=3)
    np.testing.assert_allclose(again.attributions, ours.attributions, rtol=1e-5, atol=1e-8)  # batch size does not matter


def test_sigmoid_keras2_file_class_zero_negates_the_gradient(keras2_files, rng):
    from actviz.safety.loading import load_model

    probe = Probe(load_model(keras2_files["seq_mobilenetv2"]).model)
    x = rng.random((1, 32, 32, 3), dtype=np.float32)
    one, zero = (explain(probe, x, method="saliency", class_index=c) for c in (1, 0))
    np.testing.assert_allclose(zero.attributions, -one.attributions, rtol=1e-6, atol=1e-9)
    # the predicted class, found in the same pass: p >= 0.5 is class 1
    predicted = explain(probe, x, method="saliency")
    p = float(np.asarray(probe.model(x))[0, 0])
    assert predicted.class_index[0] == int(p >= 0.5)
    np.testing.assert_array_equal(predicted.attributions, (one if p >= 0.5 else zero).attributions)
    assert predicted.probability[0] == pytest.approx(max(p, 1 - p), rel=1e-5)
    assert zero.heatmap.shape == (1, 32, 32)
    ig = explain(probe, x, method="integrated-gradients", class_index=0, steps=4)
    assert np.isfinite(ig.raw).all() and ig.raw.shape == (1, 32, 32)


def test_display_maps_and_baselines(linear_model, rng):
    x = rng.random((2, 4, 5, 2), dtype=np.float32)
    probe = Probe(linear_model)
    saliency = explain(probe, x, method="saliency", class_index=1)
    np.testing.assert_allclose(saliency.heatmap, np.ones((2, 4, 5)))  # the same gradient everywhere
    product = explain(probe, x, method="gradient-x-input", class_index=1)
    values = np.abs(product.raw[0])
    np.testing.assert_allclose(product.heatmap[0], np.minimum(values / np.percentile(values, 99), 1), rtol=1e-5)
    assert product.display == "magnitude" and saliency.display == "gradient"
    noise = baseline_images(x, "noise", seed=4)
    np.testing.assert_array_equal(noise, baseline_images(x, "noise", seed=4))
    assert noise.min() >= x[0].min() and (noise[0].max() <= x[0].max())
    assert blurred(x).shape == x.shape and blurred(x).std() < x.std()
    np.testing.assert_allclose(black_input("caffe", 3), -np.array([103.939, 116.779, 123.68]), rtol=1e-6)
    assert black_input("tf", 1).tolist() == [-1.0]
    with pytest.raises(ChoiceError, match="Unknown baseline"):
        explain(probe, x, method="integrated-gradients", baseline="grey")
    with pytest.raises(ChoiceError, match="baseline image must have"):
        explain(probe, x, method="integrated-gradients", baseline=np.zeros((3, 3, 2)))
    with pytest.raises(ChoiceError, match="number of steps"):
        explain(probe, x, method="integrated-gradients", steps=0)
    with pytest.raises(ChoiceError, match="explains the input pixels, not a layer"):
        explain(probe, x, method="saliency", layer="conv")
    with pytest.raises(ChoiceError, match="SmoothGrad has no setting 'steps'"):
        explain(probe, x, method="smoothgrad", steps=3)
    with pytest.raises(Cancelled):
        explain(probe, x, method="smoothgrad", samples=8, batch_size=2, progress=lambda done, total: done < 4)


def test_inputs_are_not_modified(linear_model, rng):
    x = rng.random((2, 4, 5, 2), dtype=np.float32)
    kept = x.copy()
    for method in ATTRIBUTIONS:
        explain(Probe(linear_model), x, method=method, **({"steps": 4} if method == "integrated-gradients" else {}))
    np.testing.assert_array_equal(x, kept)


def test_noise_tunnel_wraps_any_one_pass_gradient_method(linear_model, rng):
    """SmoothGrad's noise tunnel over Gradient x Input, made by subclassing (no registry entry): the
    mean of noisy x times the gradient (a_c / 20 on the linear model), with the noise SmoothGrad draws."""
    import dataclasses

    from actviz.explainers.gradient_x_input import GradientXInput
    from actviz.explainers.smoothgrad import NoiseTunnel

    class SmoothGradientXInput(NoiseTunnel):
        inner = GradientXInput

    x = rng.random((2, 4, 5, 2), dtype=np.float32)
    info = dataclasses.replace(METHOD_INFO["smoothgrad"], name="smoothgrad-x-input", method=SmoothGradientXInput)
    result = SmoothGradientXInput(Probe(linear_model), info, batch_size=3).explain(x, 1, samples=4, noise=0.1, seed=5)
    for n in range(2):
        spread = 0.1 * (x[n].max() - x[n].min())
        noisy = [x[n] + np.random.default_rng((5, n, j)).normal(0.0, spread, x.shape[1:]).astype(np.float32) for j in range(4)]
        np.testing.assert_allclose(result.attributions[n], np.mean(noisy, axis=0) * A[1] / 20, rtol=1e-5, atol=1e-8)
    assert result.method == "smoothgrad-x-input" and result.display == "gradient"
