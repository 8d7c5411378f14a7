import numpy as np
import pytest

from actviz.errors import ClassNotFoundError
from actviz.explainers.explain import explain
from actviz.draw.figures import overlay
from actviz.draw.resample import resize_centred
from actviz.core.probe import Probe


@pytest.fixture(scope="module")
def hand_set(keras):
    """One channel in, non-square 2x3; conv 1x1 -> [x, -x]; GAP; Dense with W = [[1, 0], [0.5, 1]]."""
    inputs = keras.Input((2, 3, 1))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, activation="softmax", name="probs")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))))
    conv.set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2)])
    dense.set_weights([np.array([[1.0, 0.0], [0.5, 1.0]], np.float32), np.zeros(2, np.float32)])
    return model


def test_grad_cam_exact_values(hand_set):
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3, 1)
    cam = explain(Probe(hand_set), x, method="gradcam", class_index=0)
    # logit_0 = mean(x) - 0.5 mean(x)... weights = W[:, 0] / 6; cam = relu(x/6 - x/12) = x/12; normalised x/6
    np.testing.assert_allclose(cam.weights[0], [1 / 6, 1 / 12], rtol=1e-6)
    np.testing.assert_allclose(cam.heatmap[0], np.arange(1, 7).reshape(2, 3) / 6, rtol=1e-6)
    assert cam.layer == "conv" and cam.ranking[0].tolist() == [0, 1]
    # each channel's part of the map: weight x its map summed (x sums to 21): [21/6, -21/12], of the positive total 3.5
    np.testing.assert_allclose(cam.shares[0], [3.5, -1.75], rtol=1e-6)
    np.testing.assert_allclose(cam.map_shares(0), [1.0, -0.5], rtol=1e-6)
    other = explain(Probe(hand_set), x, method="gradcam", class_index=1)  # weights [0, 1/6]: relu(-x/6) = 0 everywhere
    np.testing.assert_array_equal(other.heatmap[0], np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(other.map_shares(0), [0.0, 0.0])  # no evidence for the class: no share to give
    with pytest.raises(ClassNotFoundError, match="numbered 0 to 1"):
        explain(Probe(hand_set), x, method="gradcam", class_index=5)


def test_a_model_that_outputs_raw_scores_is_given_probabilities_not_scores(keras):
    """No softmax at the end (keras_hub's classifiers by default): the chance said for the class is
    the softmax of the model's outputs (numpy), not an output of -3 called "0%" or 4.7 called "470%"."""
    inputs = keras.Input((2, 3, 1))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, name="scores")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))))
    conv.set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2)])
    dense.set_weights([np.array([[1.0, 0.0], [0.5, 1.0]], np.float32), np.array([0.0, 1.0], np.float32)])
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3, 1)
    outputs = np.asarray(model(x), dtype=np.float64)[0]  # [1.75, -2.5]: scores outside 0..1
    softmax = np.exp(outputs - outputs.max()) / np.exp(outputs - outputs.max()).sum()
    for class_index in (0, 1):
        cam = explain(Probe(model), x, method="gradcam", class_index=class_index)
        np.testing.assert_allclose(cam.probability[0], softmax[class_index], rtol=1e-5)
    assert "(probability 1.4%)" in cam.caption(0)


def keras_io_grad_cam(keras, model, layer_name, x, class_index):
    """The keras.io Grad-CAM recipe, on a copy of the model whose last softmax is removed."""
    import tensorflow as tf

    config = model.get_config()
    config["layers"][-1]["config"]["activation"] = "linear"
    linear = keras.Model.from_config(config)
    linear.set_weights(model.get_weights())
    grad_model = keras.Model(linear.inputs, [linear.get_layer(layer_name).output, linear.output])
    with tf.GradientTape() as tape:
        conv_output, preds = grad_model(x)
        class_channel = preds[:, class_index]
    grads = tape.gradient(class_channel, conv_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = conv_output[0] @ pooled_grads[..., tf.newaxis]
    heatmap = tf.squeeze(heatmap)
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return heatmap.numpy()


def test_grad_cam_agrees_with_keras_io_recipe(keras, flat_model, rng):
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    probe = Probe(flat_model)
    assert probe.table.default_cam_layer()[0].name == "conv_2"  # what the global pooling reads
    for class_index in range(3):
        ours = explain(probe, x, method="gradcam", class_index=class_index)
        theirs = keras_io_grad_cam(keras, flat_model, "conv_2", x, class_index)
        if np.isfinite(theirs).all():
            np.testing.assert_allclose(ours.heatmap[0], theirs, rtol=1e-4, atol=1e-5)


def test_nested_model_matches_its_flat_equivalent(keras, nested_model, nested_base_flat, rng):
    inputs, x = nested_base_flat
    flat = keras.Model(inputs, nested_model.get_layer("probs")(nested_model.get_layer("gap")(x)))
    batch = rng.random((1, 32, 32, 3), dtype=np.float32)
    for method in ("gradcam", "gradcam++"):
        nested = explain(Probe(nested_model), batch, method=method)
        plain = explain(Probe(flat), batch, method=method)
        assert nested.layer == "vgg_base/block2_conv2" and plain.layer == "block2_conv2"  # the map the last pooling shrinks
        np.testing.assert_allclose(nested.heatmap, plain.heatmap, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(nested.weights, plain.weights, rtol=1e-4, atol=1e-7)


def test_sequential_keras2_sigmoid_against_tf_keras(keras2_files):
    """A Sequential MobileNetV2 model from a Keras 2 file, one sigmoid output: class 0 is 1 - p."""
    import tensorflow as tf
    import tf_keras

    from actviz.safety.loading import load_model

    probe = Probe(load_model(keras2_files["seq_mobilenetv2"]).model)
    assert probe.output_activation == "sigmoid"
    x = np.random.default_rng(4).random((1, 32, 32, 3), dtype=np.float32)
    reference = tf_keras.models.load_model(keras2_files["seq_mobilenetv2"], compile=False)
    base, dense = reference.layers[0], reference.layers[2]
    sub = tf_keras.Model(base.input, [base.get_layer("Conv_1").output, base.output])
    kernel, bias = dense.get_weights()
    for class_index, sign in ((1, 1.0), (0, -1.0)):
        cam = explain(probe, x, method="gradcam", layer="Conv_1", class_index=class_index)
        with tf.GradientTape() as tape:
            conv, out = sub(x, training=False)
            logit = tf.reduce_mean(out, axis=(1, 2)) @ kernel + bias
            score = sign * logit[0, 0]
        grads = tape.gradient(score, conv)[0].numpy()
        expected = np.maximum((conv[0].numpy() * grads.mean(axis=(0, 1))).sum(-1), 0)
        expected = expected / expected.max() if expected.max() > 0 else expected
        np.testing.assert_allclose(cam.heatmap[0], expected, rtol=1e-3, atol=1e-4)
        p = float(reference.predict(x, verbose=0)[0, 0])
        assert cam.probability[0] == pytest.approx(p if class_index == 1 else 1 - p, rel=1e-4)


def test_grad_cam_plus_plus_and_overlay(flat_model, rng):
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    cam = explain(Probe(flat_model), x, method="gradcam++", layer="conv_1")
    assert cam.heatmap.shape == (1, 8, 8) and 0 <= cam.heatmap.min() and cam.heatmap.max() <= 1
    pixels = (x[0] * 255).astype(np.uint8)
    blended = overlay(pixels, cam.heatmap[0], opacity=0.0)
    np.testing.assert_array_equal(blended, pixels)  # opacity 0: the image itself
    assert overlay(pixels[..., :1], cam.heatmap[0]).shape == (8, 8, 3)
    np.testing.assert_allclose(resize_centred(np.ones((2, 2)), (5, 7)), np.ones((5, 7)))


def test_sequential_model_matches_its_functional_equivalent(keras, rng):
    """A Sequential model (where the usual recipe gets no gradient) against the same layers as a Functional model."""
    layers = [
        keras.layers.Conv2D(4, 3, activation="relu", name="c1"), keras.layers.MaxPooling2D(name="p1"),
        keras.layers.Conv2D(6, 3, activation="relu", name="c2"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ]
    sequential = keras.Sequential([keras.Input((14, 12, 1)), *layers])
    inputs = keras.Input((14, 12, 1))
    x = inputs
    for layer in layers:
        x = layer(x)
    functional = keras.Model(inputs, x)
    batch = rng.random((1, 14, 12, 1), dtype=np.float32)
    for class_index in range(3):
        a = explain(Probe(sequential), batch, method="gradcam", class_index=class_index)
        b = explain(Probe(functional), batch, method="gradcam", class_index=class_index)
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-5, atol=1e-6)
        assert a.layer == b.layer == "c2"


def test_target_reads_the_class_score_as_numbers_and_tensors():
    """The one class score (core.target), against numpy written out: the logit of the class; for one
    sigmoid output class 1 scores z and class 0 scores -z (the logit of 1 - p)."""
    import tensorflow as tf

    from actviz.core.predictions import predicted_class
    from actviz.core.target import Target, predicted_classes
    from actviz.errors import ChoiceError

    logits = np.random.default_rng(5).normal(0, 3, (4, 3))
    target = Target.choose(np.full((4, 3), 1 / 3), [2, 0, 1, 2])
    np.testing.assert_array_equal(target.scores(logits), logits[np.arange(4), [2, 0, 1, 2]])
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(target.probabilities(logits), softmax[np.arange(4), [2, 0, 1, 2]], rtol=1e-12)
    tensor = tf.constant(logits, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        total = tf.reduce_sum(target(tensor))
    np.testing.assert_array_equal(tape.gradient(total, tensor).numpy(), np.eye(3)[[2, 0, 1, 2]])  # each image its own class
    assert target[np.array([3, 3])].classes.tolist() == [2, 2] and len(target[1:]) == 3

    z = np.array([[1.5], [-0.5], [2.0]])
    p = 1 / (1 + np.exp(-z[:, 0]))
    binary = Target(np.array([1, 0, 0]))
    np.testing.assert_array_equal(binary.scores(z), [1.5, 0.5, -2.0])
    np.testing.assert_allclose(binary.probabilities(z), [p[0], 1 - p[1], 1 - p[2]], rtol=1e-12)
    np.testing.assert_allclose(binary.output_probability(p[:, None]), [p[0], 1 - p[1], 1 - p[2]], rtol=1e-6)
    tensor = tf.constant(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        total = tf.reduce_sum(binary(tensor))
    np.testing.assert_array_equal(tape.gradient(total, tensor).numpy()[:, 0], [1.0, -1.0, -1.0])

    outputs = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    assert Target.choose(outputs, None).classes.tolist() == [predicted_class(row) for row in outputs] == [1, 0]
    assert np.asarray(predicted_classes(tf.constant(outputs))).tolist() == [1, 0]
    assert np.asarray(predicted_classes(tf.constant([[0.5], [0.49]]))).tolist() == [1, 0]
    with pytest.raises(ChoiceError, match="3 classes were given for 2 images"):
        Target.choose(outputs, [0, 1, 2])
    with pytest.raises(ClassNotFoundError, match="numbered 0 to 1"):
        Target.choose(p[:, None], 2)  # one sigmoid output: two classes
