"""Agreement with tf-keras-vis where it implements the same method: Grad-CAM, LayerCAM, Score-CAM
and vanilla Saliency, on a Keras 2 file written by tf_keras.

tf-keras-vis works on tf.keras models; under Keras 3 it needs ``TF_USE_LEGACY_KERAS=1`` set before
TensorFlow is imported, so it runs in a subprocess that writes the model file and its results.
requirements-dev.txt installs tf-keras-vis (and .ci/run tf_keras): a missing one fails here instead of
skipping. Layers are named with
``seek_penultimate_conv_layer=False``: tf-keras-vis 0.8.7 on TensorFlow >= 2.16 recognises convolutions
by Keras 3's class, so under tf_keras it finds none when asked to seek one.

Not compared: Grad-CAM++ (tf-keras-vis divides alpha by its sum over positions, as the paper's
authors' code does; actviz, like pytorch-grad-cam, uses eq. 19 as it stands) and SmoothGrad
(tf-keras-vis averages the absolute gradients and draws its noise from numpy's global generator).
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from actviz.explainers.explain import explain
from actviz.core.probe import Probe

# Not imported here: under Keras 3 they run only in the subprocess below (TF_USE_LEGACY_KERAS=1).
for _needed in ("tf_keras_vis", "deprecated", "tf_keras"):
    if importlib.util.find_spec(_needed) is None:
        raise ImportError(f"{_needed} is not installed; requirements-dev.txt and .ci/run install it")

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tf_keras
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    path, out = sys.argv[1], sys.argv[2]
    tf_keras.utils.set_random_seed(21)
    layers = tf_keras.layers
    model = tf_keras.Sequential([
        layers.Conv2D(6, 3, activation="relu", padding="same", input_shape=(12, 10, 3), name="c1"),
        layers.MaxPooling2D(name="p1"),
        layers.Conv2D(8, 3, activation="relu", padding="same", name="c2"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax", name="probs"),
    ])
    model.save(path)
    x = np.random.default_rng(5).random((2, 12, 10, 3)).astype("float32")
    score = CategoricalScore([2, 0])
    linear = ReplaceToLinear()
    found = {"x": x}
    for layer in ("c1", "c2"):
        found["gradcam_" + layer] = Gradcam(model, model_modifier=linear)(score, x, penultimate_layer=layer, seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
        found["layercam_" + layer] = Layercam(model, model_modifier=linear)(score, x, penultimate_layer=layer, seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
        found["scorecam_" + layer] = Scorecam(model, model_modifier=linear)(score, x, penultimate_layer=layer, seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
    found["saliency"] = Saliency(model, model_modifier=linear)(score, x, keepdims=True, gradient_modifier=None, normalize_map=False)
    np.savez(out, **{k: np.asarray(v) for k, v in found.items()})
""")


@pytest.fixture(scope="module")
def theirs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf_keras_vis")
    script = folder / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(script), str(folder / "model.h5"), str(folder / "theirs.npz")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "model.h5", dict(np.load(folder / "theirs.npz"))


def test_cams_and_saliency_agree_with_tf_keras_vis(theirs):
    from actviz.safety.loading import load_model

    path, found = theirs
    probe = Probe(load_model(path).model)  # the Keras 2 file, rebuilt for Keras 3
    x = found["x"]
    for layer in ("c1", "c2"):
        for method in ("gradcam", "layercam", "scorecam"):
            ours = explain(probe, x, method=method, layer=layer, class_index=[2, 0])
            expected = found[f"{method}_{layer}"]
            np.testing.assert_allclose(np.maximum(ours.raw, 0), expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max(),
                                       err_msg=f"{method} at {layer}")
    saliency = explain(probe, x, method="saliency", class_index=[2, 0])
    np.testing.assert_allclose(saliency.attributions, found["saliency"], rtol=1e-4, atol=1e-6 * np.abs(found["saliency"]).max())
