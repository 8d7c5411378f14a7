"""Every part of actviz on architectures unlike VGG, opened from their saved files through the safe
path: DenseNet121 (concatenations, the final ReLU as the default layer), MobileNetV3Small (Keras
operations written between layers, hard-swish, squeeze-and-excitation) and ResNet50V2 (additions,
pre-activation). Each of the 13 methods a convolutional network has, their checks, a pattern made
to excite a channel, and a data set pass with Grad-CAM must work at the default layer, give maps of
the layer's (or the input's) size, and agree with plain Keras where plain Keras can say: the class
activation maps' channel shares add up to the map, the data set's answers are the model's own.

Small inputs (32 x 32) and cheap settings keep the whole file near a minute on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from actviz.explainers.checks import run_checks
from actviz.explainers.explain import explain
from actviz.explainers.registry import METHOD_INFO, methods_for
from actviz.safety.models import open_model

SIDE = 32
CHEAP = {"scorecam": {"channels": 8}, "smoothgrad": {"samples": 2}, "integrated-gradients": {"steps": 4}, "occlusion": {"patch": 8}}
DEFAULT_LAYERS = {"DenseNet121": "relu", "MobileNetV3Small": None, "ResNet50V2": "post_relu"}


@pytest.fixture(scope="module", params=sorted(DEFAULT_LAYERS))
def fine_tuned(request, keras, tmp_path_factory):
    """(name, the opened model, the plain Keras model it was saved from)."""
    name = request.param
    keras.utils.set_random_seed(5)
    base = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(SIDE, SIDE, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    model = keras.Model(base.input, keras.layers.Dense(3, activation="softmax", name="probs")(pooled))
    path = tmp_path_factory.mktemp(name) / f"{name}.keras"
    model.save(path)
    return name, open_model(str(path)), model


@pytest.fixture()
def images():
    return np.random.default_rng(2).random((2, SIDE, SIDE, 3), dtype=np.float32)


def test_every_method_and_its_checks(fine_tuned, images):
    name, opened, model = fine_tuned
    probe = opened.probe
    layer, reason = probe.table.default_cam_layer()
    assert DEFAULT_LAYERS[name] is None or layer.name == DEFAULT_LAYERS[name], reason
    assert layer.name == model.layers[-3].name  # what the global average pooling reads
    methods = methods_for(probe)
    assert len(methods) == 13 and "rollout" not in methods
    height, width = layer.output_shape[:2]
    for method in methods:
        result = explain(probe, images, method=method, class_index=[0, 2], **CHEAP.get(method, {}))
        size = (height, width) if METHOD_INFO[method].family == "cam" else (SIDE, SIDE)
        assert result.raw.shape == (2, *size) and np.isfinite(result.raw).all(), method
        assert result.heatmap.min() >= 0 and result.heatmap.max() <= 1, method
        if result.shares is not None and method != "eigencam":  # a weighted sum of channels: their parts add up to the map
            np.testing.assert_allclose(result.shares.sum(axis=1), result.raw.sum(axis=(1, 2)), rtol=1e-3, atol=1e-4, err_msg=method)
    checks = run_checks(probe, images[:1], explain(probe, images[:1], method="gradcam"), steps=4, depths=1)
    assert [v["check"] for v in checks.verdicts(0)] and all(v["state"] in ("passed", "failed", "partly", "cannot tell") for v in checks.verdicts(0))


def test_the_model_answers_as_plain_keras_does(fine_tuned, images):
    name, opened, model = fine_tuned
    np.testing.assert_allclose(opened.probe.run(images).predictions[0], np.asarray(model(images)), rtol=1e-4, atol=1e-6)


def test_patterns_and_a_data_set_pass(fine_tuned, tmp_path):
    from PIL import Image

    import actviz
    from actviz.dataset import open_source, summarize

    name, opened, model = fine_tuned
    layer = opened.probe.table.default_cam_layer()[0].name
    patterns = actviz.feature_patterns(opened, layer, [0, 1], steps=4)
    assert patterns.images.shape == (2, SIDE, SIDE, 3) and patterns.images.dtype == np.uint8
    pixels = (np.random.default_rng(6).random((6, SIDE, SIDE, 3)) * 255).astype(np.uint8)
    for index, image in enumerate(pixels):
        folder = tmp_path / ("a" if index % 2 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")
    summary = summarize(opened, open_source(tmp_path), layers=[layer], gradcam=True, batch_size=4)
    assert summary.layout.cam_layer == layer and summary.count == 6
    answers = np.asarray(model(pixels.astype(np.float32) / 255)).argmax(axis=1)  # the saved PNGs are lossless
    numbers = [int(summary.image_name(int(index)).rsplit("/", 1)[-1].split(".")[0]) for index in summary.index]
    np.testing.assert_array_equal(summary.predicted, answers[numbers])
