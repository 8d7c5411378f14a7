"""Every constructor of ``keras.applications`` in the installed Keras, as a user who fine-tuned it
would save it: ``weights=None`` (nothing downloaded), seeded, ``include_top=False`` + global average
pooling + ``Dense(3, softmax)``, flat or nested in a Sequential, ``.keras`` or ``.h5``, opened
through the safe path; its feature maps against plain Keras sub-models, Grad-CAM at the default
layer against the keras.io recipe on the logit (see ``fine_tuned``).

Sizes are the smallest Keras builds (32 x 32; 75 for the Inception networks, 71 for Xception). The
architectures run two at a time in worker processes, so that all of them fit CI's time on two
cores; each test judges its architecture's numbers. Where Keras itself cannot reload a ``.h5``
file (ConvNeXt's ``LayerScale``, Inception-ResNet's ``CustomScaleLayer``, MobileNetV3's
operations), actviz must refuse it in words, and the ``.keras`` file is checked instead.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest

import fine_tuned

NAMES = fine_tuned.constructors()
LAYOUTS = fine_tuned.layouts(NAMES)
#: Worker processes: two architectures at a time on two cores.
WORKERS = max(1, min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, dict]:
    """name -> what ``fine_tuned.check`` found, all architectures, the largest started first."""
    folder = tmp_path_factory.mktemp("applications")
    order = sorted(NAMES, key=lambda name: ("XLarge" not in name, "Large" not in name and "B7" not in name, name))
    threads = max(1, (os.cpu_count() or 1) // WORKERS)
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"),
                             initializer=fine_tuned.start_worker, initargs=(threads,)) as pool:
        futures = {name: pool.submit(fine_tuned.check, name, *LAYOUTS[name], str(folder)) for name in order}
        return {name: future.result() for name, future in futures.items()}


def test_every_constructor_is_covered():
    assert len(NAMES) >= 40 and {"ConvNeXtTiny", "DenseNet121", "EfficientNetV2S", "InceptionResNetV2", "MobileNetV3Small",
                                 "NASNetMobile", "ResNet50V2", "VGG19", "Xception"} <= set(NAMES)
    assert set(LAYOUTS.values()) == {(False, ".keras"), (True, ".keras"), (False, ".h5"), (True, ".h5")}


@pytest.mark.parametrize("name", NAMES)
def test_architecture_opens_and_agrees_with_plain_keras(checked, name):
    found = checked[name]
    assert "error" not in found, found.get("error")
    if found["opened"] != found["asked"]:  # a .h5 file refused: only where Keras cannot reload it either
        assert not found["keras_reloads_h5"], found["refused"]
    assert found["maps"] > 10 and found["map_errors"] == [], found["map_errors"][:5]
    assert found["prediction_error"] < 1e-5
    assert found["layer"] == found["cam_layer"] == found["expected_layer"], found["reason"]
    assert "global average pooling" in found["reason"] and found["cam_reason"] == found["reason"]
    assert found["cam_error"] <= fine_tuned.CAM_TOLERANCE * found["cam_scale"], (found["cam_error"], found["cam_scale"])
