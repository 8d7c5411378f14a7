"""One ``keras.applications`` architecture as a user who fine-tuned it would save it, opened through
actviz's safe path and compared with plain Keras: run in a worker process by
``test_applications.py`` (two architectures at a time fit CI's time on two cores).

``check(name, folder)`` returns plain numbers and words for the test to judge; the references are
worked out on the model that was saved, before actviz opens the file: every layer's map from one
plain Keras sub-model, and Grad-CAM by the keras.io recipe on the logit with ``tf.GradientTape``.
"""

from __future__ import annotations

import gc
import os
import time
import traceback
from pathlib import Path

import numpy as np

#: The smallest input Keras builds these at (its own checks); 32 x 32 for the others.
SMALLEST = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
#: Tolerances: feature maps (relative to each layer's largest value) and Grad-CAM (to the map's).
MAP_TOLERANCE = 1e-5
CAM_TOLERANCE = 1e-4


def constructors() -> list[str]:
    """Every architecture constructor ``keras.applications`` offers (ResNet50, DenseNet121, ...)."""
    import keras

    return sorted(name for name in dir(keras.applications) if name[:1].isupper() and callable(getattr(keras.applications, name)))


def layouts(names: list[str]) -> dict[str, tuple[bool, str]]:
    """(nested in a Sequential, file format) per architecture, alternating over the list so that
    every family meets each combination."""
    return {name: (index % 2 == 1, (".keras", ".keras", ".h5", ".h5")[index % 4]) for index, name in enumerate(names)}


def start_worker(threads: int) -> None:
    """A worker's TensorFlow shares the cores with the other worker (read when TensorFlow starts)."""
    os.environ.update(TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
    os.environ["ACTVIZ_MAX_MODEL_MB"] = "8192"  # ConvNeXtXLarge: 1.4 GB of weights, about 7 GB while loading


def check(name: str, nested: bool, suffix: str, folder: str) -> dict:
    """Build, save, open and compare one architecture; a dict of what was found (``error``: the
    traceback of anything that failed)."""
    try:
        return _check(name, nested, suffix, Path(folder))
    except Exception:  # noqa: BLE001 -- handed to the test, which fails with it
        return {"name": name, "error": traceback.format_exc()}


def _check(name: str, nested: bool, suffix: str, folder: Path) -> dict:
    import keras

    from actviz.core.probe import Probe
    from actviz.explainers.explain import explain

    started = time.monotonic()
    model, base = _fine_tuned(keras, name, nested)
    side = base.input.shape[1]
    x = np.random.default_rng(0).random((2, side, side, 3), dtype=np.float32)
    maps = _reference_maps(keras, base, x)
    last, reference_cam = _keras_io_grad_cam(keras, model, base, x, [0, 2])
    predictions = np.asarray(model(x))
    prefix = base.name + "/" if nested else ""
    found = {"name": name, "nested": nested, "asked": suffix, "expected_layer": prefix + last}
    opened = _open(keras, model, folder / name, suffix, found)
    del model, base  # the largest ones would otherwise be in memory twice while the file loads
    gc.collect()

    probe = Probe(opened)
    result = probe.run(x, [prefix + layer for layer in maps])
    found["maps"] = len(maps)
    found["map_errors"] = [
        (layer, float(np.abs(result.maps[prefix + layer] - want).max()), float(np.abs(want).max()))
        for layer, want in maps.items()
        if not np.allclose(result.maps[prefix + layer], want, rtol=1e-4, atol=MAP_TOLERANCE * max(1.0, np.abs(want).max()))
    ]
    found["prediction_error"] = float(np.abs(result.predictions[0] - predictions).max())
    chosen, found["reason"] = probe.table.default_cam_layer()
    cam = explain(probe, x, method="gradcam", class_index=[0, 2])
    found.update(layer=chosen.name, cam_layer=cam.layer, cam_reason=cam.layer_reason, cam_shape=cam.raw.shape[1:])
    found["cam_error"] = float(np.abs(cam.raw - reference_cam).max())
    found["cam_scale"] = float(max(np.abs(reference_cam).max(), 1e-12))
    found["seconds"] = time.monotonic() - started
    return found


def _fine_tuned(keras, name: str, nested: bool):
    """(model, base): the architecture without its top, global average pooling and Dense(3, softmax)."""
    keras.utils.set_random_seed(sum(map(ord, name)))
    side = SMALLEST.get(name, 32)
    base = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(side, side, 3))
    head = [keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(3, activation="softmax", name="probs")]
    if nested:
        return keras.Sequential([keras.Input((side, side, 3)), base, *head], name="fine_tuned"), base
    return keras.Model(base.input, head[1](head[0](base.output)), name="fine_tuned"), base


def _reference_maps(keras, base, x: np.ndarray) -> dict[str, np.ndarray]:
    """Plain Keras: every layer of the base with an image-like output (not the models nested in it), from one sub-model."""
    layers = [layer for layer in base.layers[1:] if not isinstance(layer, keras.Model) and len(layer.output.shape) == 4]
    outputs = keras.Model(base.input, [layer.output for layer in layers])(x)
    return {layer.name: np.asarray(value) for layer, value in zip(layers, outputs)}


def _keras_io_grad_cam(keras, model, base, x: np.ndarray, classes: list[int]) -> tuple[str, np.ndarray]:
    """The keras.io Grad-CAM recipe at the layer whose map the global pooling reads (for VGG, the map its
    last pooling shrinks), on the logit:
    (that layer's name, raw maps (N, h, w) before the ReLU). The images go through together: each
    one's class score depends on that image only (inference mode), so each gets its own gradient."""
    import tensorflow as tf

    last = base.layers[-1].name  # Keras lists a functional model's layers in order: its output's layer last
    if isinstance(base.layers[-1], (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        last = base.layers[-2].name  # VGG's last pooling only shrinks the map: the Grad-CAM paper's layer is the one it pools
    grad_model = keras.Model(base.input, [base.get_layer(last).output, base.output])
    kernel, bias = (np.asarray(w) for w in model.get_layer("probs").get_weights())
    with tf.GradientTape() as tape:
        conv_output, features = grad_model(x)
        logits = tf.reduce_mean(features, axis=(1, 2)) @ kernel + bias  # the Dense layer before its softmax
        class_channel = tf.gather(logits, classes, axis=1, batch_dims=0)
        score = tf.reduce_sum(tf.linalg.diag_part(class_channel))  # image n's score for its own class
    grads = tape.gradient(score, conv_output)
    pooled_grads = tf.reduce_mean(grads, axis=(1, 2))  # each image's mean gradient per channel
    return last, np.einsum("nhwc,nc->nhw", np.asarray(conv_output), np.asarray(pooled_grads))


def _open(keras, model, path: Path, suffix: str, found: dict):
    """The saved model opened through the safe path. A .h5 file Keras itself cannot reload must be
    refused in words, and the .keras file is opened instead (``found`` says which happened)."""
    from actviz.errors import ModelFileError
    from actviz.safety.loading import load_model

    model.save(path.with_suffix(suffix))
    found["opened"] = suffix
    try:
        return load_model(path.with_suffix(suffix)).model
    except ModelFileError as refused:
        if suffix != ".h5":
            raise
        found["refused"] = str(refused)
    try:
        keras.saving.load_model(path.with_suffix(suffix))
        found["keras_reloads_h5"] = True
    except Exception:  # noqa: BLE001 -- Keras raises ValueError or TypeError: it cannot reload the file either
        found["keras_reloads_h5"] = False
    model.save(path.with_suffix(".keras"))
    found["opened"] = ".keras"
    return load_model(path.with_suffix(".keras")).model
