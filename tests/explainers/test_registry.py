"""The registry: a method is one entry (adding one touches its file and its entry only), the
settings' schema (checks, widgets, words), and what every entry's display rule gives."""

import dataclasses

import numpy as np
import pytest

from actviz.core.probe import Probe
from actviz.errors import ChoiceError
from actviz.explainers import registry
from actviz.explainers.cam import CAM, LayerPass
from actviz.explainers.explain import explain
from actviz.explainers.result import display_map
from actviz.explainers.schema import MethodInfo


class MeanGradientSquared(CAM):
    """A throwaway class activation map: each channel weighed by its mean squared gradient."""

    def weights(self, found: LayerPass) -> np.ndarray:
        return (found.gradients**2).mean(axis=(1, 2))


def hand_set_model(keras):
    """One channel in, 2x3; conv 1x1 -> [x, -x]; GAP; Dense(2, softmax) W = [[1, 0], [0.5, 1]], no bias:
    logit_0 = 0.5 mean(x), and dS0/dA = [1, 0.5] / 6 at every position."""
    inputs = keras.Input((2, 3, 1))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    head = keras.layers.Dense(2, activation="softmax", use_bias=False, name="probs")
    model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D(name="gap")(conv(inputs))))
    conv.set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2)])
    head.set_weights([np.array([[1.0, 0.0], [0.5, 1.0]], np.float32)])
    return model


X = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3, 1)


def test_adding_a_cam_is_its_class_and_one_entry(keras, monkeypatch):
    entry = MethodInfo(
        "gradient-squared", "Mean-gradient-squared CAM", "cam", MeanGradientSquared, layer=True,
        sentence="Weighs each channel by its mean squared gradient.",
    )
    with monkeypatch.context() as patched:
        patched.setattr(registry, "METHOD_INFO", {**registry.METHOD_INFO, entry.name: entry})
        result = explain(Probe(hand_set_model(keras)), X, method="gradient-squared", class_index=0)
        assert "gradient-squared" in [row["name"] for row in registry.method_table()]
    # weights (1/6)^2 and (0.5/6)^2; map = x/36 - x/144 = x/48
    x = X[0, :, :, 0].astype(np.float64)
    np.testing.assert_allclose(result.weights[0], [1 / 36, 1 / 144], rtol=1e-6)
    np.testing.assert_allclose(result.raw[0], x / 48, rtol=1e-6)
    np.testing.assert_allclose(result.heatmap[0], x / 6, rtol=1e-6)
    assert result.layer == "conv" and result.ranking[0].tolist() == [0, 1]
    assert result.caption(0).startswith("Mean-gradient-squared CAM at layer conv, for class 0")
    assert "gradient-squared" not in registry.METHOD_INFO  # not left registered
    with pytest.raises(ChoiceError, match="Unknown explanation method 'gradient-squared'"):
        explain(Probe(hand_set_model(keras)), X, method="gradient-squared")


def test_every_entry_is_shown_by_its_display_rule(flat_model, rng):
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    probe = Probe(flat_model)
    cheap = {"smoothgrad": {"samples": 2}, "integrated-gradients": {"steps": 2}, "occlusion": {"patch": 4}, "scorecam": {"channels": 2}}
    for name, info in registry.METHOD_INFO.items():
        if info.family == "attention":  # a transformer's: tests/architectures/test_vision_transformer.py
            continue
        result = explain(probe, x, method=name, class_index=1, **cheap.get(name, {}))
        assert result.display == info.display and result.family == info.family and result.title == info.title
        shown = display_map(result.raw, info.display, result.attributions)  # from the float32 maps the result keeps
        np.testing.assert_allclose(result.heatmap, shown, rtol=1e-5, atol=1e-6, err_msg=name)
        assert (result.layer is not None) == info.layer


@pytest.mark.parametrize("method, settings, words", [
    ("smoothgrad", {"samples": 0}, "The number of samples must be a whole number from 1 to 10000 (got 0)."),
    ("smoothgrad", {"samples": 2.0}, "The number of samples must be a whole number from 1 to 10000 (got 2.0)."),
    ("smoothgrad", {"noise": 1.5}, "The noise level is a share of the image's range of values, from 0 to 1 (got 1.5)."),
    ("smoothgrad", {"noise": True}, "The noise level is a share of the image's range of values, from 0 to 1 (got True)."),
    ("integrated-gradients", {"steps": 10_001}, "The number of steps must be a whole number from 1 to 10000 (got 10001)."),
    ("integrated-gradients", {"baseline": "grey"}, "Unknown baseline 'grey'. Choose one of: black, blur, noise."),
    ("occlusion", {"patch": 9}, "The occlusion patch must be a whole number of pixels from 1 to 8 (got 9)."),
    ("occlusion", {"stride": 0}, "The occlusion stride must be a whole number of pixels from 1 to 8 (got 0)."),
    ("occlusion", {"fill": "grey"}, "Unknown fill 'grey'. Choose one of: black, mean, blur, or a number."),
    ("occlusion", {"fill": float("nan")}, "The fill must be one of black, mean, blur or a number (got nan)."),
    ("scorecam", {"channels": 21}, "Score-CAM can use 1 to 20 channels of this layer (got 21)."),
    ("eigencam", {"noise": 0.1}, "Eigen-CAM has no setting 'noise'; it has no settings."),
    ("occlusion", {"steps": 3}, "Occlusion sensitivity has no setting 'steps'; its settings are: patch, stride, fill, black."),
])
def test_settings_are_checked_by_the_schema_before_any_pass(flat_model, rng, method, settings, words):
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    with pytest.raises(ChoiceError) as raised:
        explain(Probe(flat_model), x, method=method, **settings)
    assert str(raised.value) == words


def test_setting_widgets_for_a_page_that_knows_no_method():
    samples, noise = registry.setting_widgets("smoothgrad", image_size=(300, 300))
    assert (samples["kind"], samples["low"], samples["high"], samples["step"], samples["value"]) == ("slider", 4, 50, 1, 20)
    assert (noise["kind"], noise["low"], noise["high"], noise["step"], noise["value"]) == ("slider", 0.05, 0.5, 0.05, 0.2)
    assert samples["label"] == "Noisy copies" and samples["help"] == "noisy copies of the image (default 20)"
    (channels,) = registry.setting_widgets("scorecam", image_size=(300, 300), channels=512)
    assert (channels["kind"], channels["values"], channels["value"], channels["whole"]) == ("stops", [16, 32, 64, 128, 256, 512], 512, 512)  # all channels to start with
    patch, stride, fill = registry.setting_widgets("occlusion", image_size=(300, 200))
    assert (patch["low"], patch["high"], patch["value"]) == (1, 200, 25) and stride["value"] == 25
    assert fill["kind"] == "select" and fill["choices"] == list(registry.FILLS) and fill["words"] == registry.FILLS
    steps, baseline = registry.setting_widgets("integrated-gradients", image_size=(56, 56))
    assert (steps["low"], steps["high"], steps["value"]) == (8, 128, 50) and baseline["value"] == "black"
    assert registry.setting_widgets("gradcam", image_size=(56, 56)) == []
    # every widget's starting value is one its method takes
    for name, info in registry.METHOD_INFO.items():
        limits = registry.Limits(56, 16)
        for widget in registry.setting_widgets(name, image_size=(56, 56), channels=16):
            setting = next(s for s in info.schema if s.name == widget["name"])
            assert setting.check(widget["value"], limits) == widget["value"]


def test_offered_settings_context_and_words():
    offered = registry.offered_settings()
    assert {name: methods for name, (methods, _) in offered.items()} == {
        "channels": ("scorecam",), "samples": ("smoothgrad",), "noise": ("smoothgrad",), "steps": ("integrated-gradients",),
        "baseline": ("integrated-gradients",), "patch": ("occlusion",), "stride": ("occlusion",), "fill": ("occlusion",),
    }
    assert offered["fill"][1].from_text("0.5") == 0.5 and offered["fill"][1].from_text("mean") == "mean"
    assert offered["baseline"][1].from_text("blur") == "blur"
    assert registry.context_settings("occlusion", black=-1.0, seed=4) == {"black": -1.0}
    assert registry.context_settings("smoothgrad", black=-1.0, seed=4) == {"seed": 4}
    assert registry.settings_words("integrated-gradients", {"steps": 8, "baseline": np.zeros((2, 2, 1))}) == "8 steps from a given image"
    assert registry.settings_words("occlusion", {"patch": 5, "stride": 2, "fill": 0.5}) == "patches of 5 x 5 pixels every 2 pixels, filled with the value 0.5"
    assert registry.settings_words("occlusion", {"patch": None, "stride": None, "fill": "black"}) == ""
    assert registry.settings_words("gradcam", {}) == ""
    changed = dataclasses.replace(registry.METHOD_INFO["smoothgrad"], caption="{samples}")
    assert changed.words({"samples": 3, "noise": 0.5}) == "3 noisy copies"
