"""The class scores before the final softmax or sigmoid, whichever way the model ends."""

import numpy as np
import pytest

from actviz.core.probe import Probe


def _ending(keras, kind):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3, name="conv")(inputs))
    if kind == "dense softmax":
        return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(x))
    x = keras.layers.Dense(4 if kind != "sigmoid layer" else 1, name="head")(x)
    endings = {
        "softmax layer": keras.layers.Softmax(),
        "activation layer": keras.layers.Activation("softmax"),
        "sigmoid layer": keras.layers.Activation("sigmoid"),
        "ops softmax": keras.ops.softmax,
        "linear": lambda t: t,
    }
    return keras.Model(inputs, endings[kind](x))


@pytest.mark.parametrize("kind,activation", [
    ("dense softmax", "softmax"), ("softmax layer", "softmax"), ("activation layer", "softmax"),
    ("sigmoid layer", "sigmoid"), ("ops softmax", "softmax"), ("linear", "linear"),
])
def test_logits_are_the_scores_before_the_last_step(keras, kind, activation):
    model = _ending(keras, kind)
    model.get_layer("head").set_weights([w + 0.3 for w in model.get_layer("head").get_weights()])
    probe = Probe(model)
    assert probe.output_activation == activation
    x = np.random.default_rng(0).random((3, 6, 6, 2), dtype=np.float32)
    features = keras.Model(model.inputs, model.get_layer("conv").output)(x)
    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    expected = np.asarray(features).mean(axis=(1, 2)) @ kernel + bias  # independent: the head by hand, no activation
    logits, probabilities = probe.logits_model()(x)
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(probabilities), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
