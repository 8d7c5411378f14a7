"""Tiny named models and test files, built offline (weights=None or hand-set), never downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def keras():
    import keras

    return keras


def _seeded(keras):
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def flat_model(keras):
    """A flat functional CNN with 8x8x3 input, layers named conv_1, pool_1, conv_2, ..."""
    _seeded(keras)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool_1")(x)
    x = keras.layers.Conv2D(20, 3, padding="same", activation="relu", name="conv_2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="flat")


def small_vgg_base(keras, shape=(32, 32, 3), name="vgg_base"):
    """A VGG-style functional base (what VGG16 is, but small): conv-conv-pool blocks."""
    inputs = keras.Input(shape, name=f"{name}_input")
    x = inputs
    for block, filters in enumerate((4, 8), start=1):
        for conv in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{conv}")(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name=name)


@pytest.fixture(scope="session")
def nested_model(keras):
    """A functional model using a VGG-style base as one layer, then GAP and Dense."""
    _seeded(keras)
    base = small_vgg_base(keras)
    inputs = keras.Input((32, 32, 3), name="image")
    x = base(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="nested")


@pytest.fixture()
def nested_base_flat(keras, nested_model):
    """(inputs, features): the layers of ``nested_model``'s base applied one by one to a new input,
    the same weights laid out flat (an independent twin to check nested models against)."""
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for layer in nested_model.get_layer("vgg_base").layers[1:]:
        x = layer(x)
    return inputs, x


def _rewrite_keras_config(path, change) -> bytes:
    """A copy of a .keras file with its config.json changed in place by ``change(config)``."""
    import io
    import json
    import zipfile

    source = zipfile.ZipFile(path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            target.writestr(info.filename, data)
    return buffer.getvalue()


@pytest.fixture()
def rewrite_config():
    return _rewrite_keras_config


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def keras2_files(tmp_path_factory):
    """Genuine Keras 2 .h5 files written by tf_keras: flat VGG16 (user's layout, small input),
    VGG16 nested in a Functional model, MobileNetV2 nested in a Sequential model (with
    non-trivial BatchNormalization statistics), and a Sequential that took input_shape=."""
    tf_keras = pytest.importorskip("tf_keras")
    folder = tmp_path_factory.mktemp("keras2")
    layers = tf_keras.layers
    tf_keras.utils.set_random_seed(7)
    files = {}

    base = tf_keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 48, 3))
    x = layers.GlobalAveragePooling2D()(base.get_layer("block5_conv3").output)
    tf_keras.Model(base.input, layers.Dense(2, activation="softmax")(x)).save(folder / "flat_vgg16.h5")
    files["flat_vgg16"] = folder / "flat_vgg16.h5"

    base = tf_keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    inputs = tf_keras.Input((32, 32, 3))
    x = layers.GlobalAveragePooling2D()(base(inputs))
    tf_keras.Model(inputs, layers.Dense(3, activation="softmax")(x)).save(folder / "nested_vgg16.h5")
    files["nested_vgg16"] = folder / "nested_vgg16.h5"

    base = tf_keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3))
    rng = np.random.default_rng(3)
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape),
            ])
    seq = tf_keras.Sequential([base, layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
    seq.save(folder / "seq_mobilenetv2.h5")
    files["seq_mobilenetv2"] = folder / "seq_mobilenetv2.h5"

    seq = tf_keras.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(12, 10, 1), name="c1"),
        layers.MaxPooling2D(name="p1"),
        layers.Flatten(),
        layers.Dense(2, activation="softmax"),
    ])
    seq.save(folder / "seq_input_shape.h5")
    files["seq_input_shape"] = folder / "seq_input_shape.h5"
    return files
