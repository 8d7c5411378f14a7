"""The checks: deletion/insertion curves against a plain computation on a model linear in its
pixels, the cascading randomisation test (known answers: Eigen-CAM ignores the top layer; Gradient x
Input on a digit on black stays the digit's shape), completeness, and the verdicts in words."""

import numpy as np
import pytest

from actviz.explainers.checks import (
    CURVE_STEPS, FLAG_CORRELATION, deletion_insertion, randomisation_check, randomise_layer, run_checks, spearman,
)
from actviz.errors import Cancelled
from actviz.explainers.explain import explain
from actviz.core.probe import Probe


@pytest.fixture(scope="module")
def pixel_model(keras):
    """4x5x1 input; conv 1x1 identity, Flatten, Dense(2, softmax): logit_1 - logit_0 = sum_p w_p x_p."""
    inputs = keras.Input((4, 5, 1))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, activation="softmax", use_bias=False, name="probs")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32)])
    w = np.random.default_rng(2).normal(0, 1, 20).astype(np.float32)
    dense.set_weights([np.stack([np.zeros(20, np.float32), w], axis=1)])
    return model, w.reshape(4, 5)


@pytest.fixture(scope="module")
def demo():
    """The bundled model (trained on digits) and one of its sample digits, preprocessed."""
    from actviz.demo import SAMPLES
    from actviz.inputs.images import open_image
    from actviz.safety.models import open_model
    from actviz.inputs.batch import to_batch

    opened = open_model()
    batch = to_batch(open_image(sorted(SAMPLES.iterdir())[7]), opened.probe, preprocess_as="rescale").inputs
    return opened, batch


def test_deletion_and_insertion_against_plain_computation(pixel_model, rng):
    from scipy.ndimage import gaussian_filter

    model, w = pixel_model
    x = rng.random((2, 4, 5, 1), dtype=np.float32)
    result = explain(Probe(model), x, method="occlusion", class_index=[1, 0], patch=1)
    steps, black = 4, -0.2
    curves = deletion_insertion(Probe(model), x, result, steps=steps, black=black, batch_size=3)
    soft = gaussian_filter(x, sigma=(0, 5 / 8, 5 / 8, 0), mode="nearest")
    for n, c in ((0, 1), (1, 0)):
        order = np.argsort(-result.heatmap[n].ravel(), kind="stable")
        expected = {"deletion": [], "insertion": []}
        for i in range(steps + 1):
            top = np.zeros(20, bool)
            top[order[: round(i / steps * 20)]] = True
            top = top.reshape(4, 5)
            for kind, image in (("deletion", np.where(top, black, x[n, ..., 0])), ("insertion", np.where(top, x[n, ..., 0], soft[n, ..., 0]))):
                p1 = 1 / (1 + np.exp(-(w * image).sum()))
                expected[kind].append(p1 if c == 1 else 1 - p1)
        np.testing.assert_allclose(curves.deletion[n], expected["deletion"], rtol=1e-5)
        np.testing.assert_allclose(curves.insertion[n], expected["insertion"], rtol=1e-5)
        fractions = np.linspace(0, 1, steps + 1)
        assert curves.deletion_auc[n] == pytest.approx(np.trapezoid(expected["deletion"], fractions), rel=1e-5)
        assert curves.insertion_auc[n] == pytest.approx(np.trapezoid(expected["insertion"], fractions), rel=1e-5)
    assert [row["share"] for row in curves.rows(0)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # occlusion with one-pixel patches ranks exactly by each pixel's share: the deletion curve of
    # the predicted class falls first, the insertion curve rises first
    assert curves.deletion[0, 1] <= curves.deletion[0, 0] and curves.insertion[0, 1] >= curves.insertion[0, 0]


def test_faithful_map_beats_its_reverse_on_trained_model(demo):
    opened, batch = demo
    probe = opened.probe
    cam = explain(probe, batch, method="gradcam")
    reverse = explain(probe, batch, method="gradcam")
    object.__setattr__(reverse, "heatmap", 1.0 - cam.heatmap)  # the same map, upside down
    good = deletion_insertion(probe, batch, cam, steps=16)
    bad = deletion_insertion(probe, batch, reverse, steps=16)
    assert good.deletion_auc[0] < bad.deletion_auc[0] and good.insertion_auc[0] > bad.insertion_auc[0]
    assert good.deletion[0, 0] == pytest.approx(cam.probability[0], rel=1e-4)  # nothing removed yet


def test_randomisation_cascade_known_answers(demo):
    opened, batch = demo
    probe = opened.probe
    before = [w.copy() for w in opened.model.get_weights()]
    prediction = np.asarray(opened.model(batch))
    order = [info.name for info in reversed(probe.table.rows) if not info.container and info.params > 0]
    eigen = explain(probe, batch, method="eigencam")
    result = randomisation_check(probe, batch, eigen, seed=1, depths=3)
    assert result.layers == order[:3] == ["predictions", "block3_conv2", "block3_conv1"]
    np.testing.assert_array_equal(result.maps[0, 0], eigen.heatmap[0])
    # Eigen-CAM at block3_conv2 does not read the last layer: randomising it changes nothing
    assert result.correlation[0, 0] == pytest.approx(1.0)
    assert result.correlation[0, 1] < 0.9
    # the user's model is untouched
    for a, b in zip(before, opened.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(opened.model(batch)), prediction)
    # Grad-CAM depends on what the model learned ...
    cam = randomisation_check(probe, batch, explain(probe, batch, method="gradcam"), seed=1)
    assert len(cam.layers) == len(order) and cam.correlation.shape == (1, len(order))
    assert cam.correlation[0, -1] < FLAG_CORRELATION and not cam.flagged[0]
    # ... while Gradient x Input on a digit on black is 0 on the black background whatever the weights:
    # it keeps the digit's shape (Adebayo et al.'s finding), and is flagged
    product = explain(probe, batch, method="gradient-x-input")
    checked = randomisation_check(probe, batch, product, seed=1)
    assert checked.correlation[0, -1] >= FLAG_CORRELATION and checked.flagged[0]
    again = randomisation_check(probe, batch, product, seed=1)
    np.testing.assert_array_equal(again.correlation, checked.correlation)  # seeded


def test_randomisation_on_nested_and_keras2_models(nested_model, keras2_files, rng):
    from actviz.safety.loading import load_model

    batch = rng.random((2, 32, 32, 3), dtype=np.float32)
    probe = Probe(nested_model)
    cam = explain(probe, batch, method="gradcam", layer="block2_conv1", class_index=[0, 1])
    result = randomisation_check(probe, batch, cam, depths=3)
    assert result.layers == ["probs", "vgg_base/block2_conv2", "vgg_base/block2_conv1"]
    assert result.correlation.shape == (2, 3) and np.isfinite(result.correlation).all()
    seq = Probe(load_model(keras2_files["seq_mobilenetv2"]).model)
    saliency = explain(seq, batch[:1], method="saliency", class_index=0)
    result = randomisation_check(seq, batch[:1], saliency, depths=2)
    dense = [info.name for info in seq.table.rows if info.type == "Dense"]
    # 100-odd layers with weights, randomised in 16 groups of neighbours, top first
    assert result.layers[0].startswith(dense[-1] + " … ") and result.correlation.shape == (1, 2)
    assert result.maps.shape == (1, 2, 32, 32)


def test_randomise_layer_and_spearman(keras):
    from scipy.stats import spearmanr

    dense = keras.layers.Dense(30)
    dense.build((None, 20))
    norm = keras.layers.BatchNormalization()
    norm.build((None, 4, 4, 3))
    norm.set_weights([np.full(3, 2.0), np.full(3, 0.5), np.full(3, 0.3), np.full(3, 4.0)])
    randomise_layer(dense, seed=3)
    kernel, bias = dense.get_weights()
    limit = np.sqrt(6 / 50)
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit and not bias.any()
    first = kernel.copy()
    randomise_layer(dense, seed=3)
    np.testing.assert_array_equal(dense.get_weights()[0], first)
    randomise_layer(norm, seed=0)
    gamma, beta, mean, variance = norm.get_weights()
    assert gamma.tolist() == [1, 1, 1] and beta.tolist() == [0, 0, 0] and mean.tolist() == [0, 0, 0] and variance.tolist() == [1, 1, 1]
    rng = np.random.default_rng(0)
    a, b = rng.random((6, 7)), rng.random((6, 7))
    b[0, :3] = b[0, 0]  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)
    assert spearman(a, np.zeros((6, 7))) == 0.0


def test_run_checks_json_verdicts_and_cancel(demo):
    opened, batch = demo
    probe = opened.probe
    integrated = explain(probe, batch, method="integrated-gradients", steps=16)
    seen = []
    checks = run_checks(probe, batch, integrated, steps=8, depths=2, progress=lambda d, t: seen.append((d, t)))
    figures = checks.as_json(0)
    assert {"deletion_auc", "insertion_auc", "randomisation_rank_correlation", "randomised_layers", "completeness_gap"} <= set(figures)
    assert len(figures["randomisation_rank_correlation"]) == 2 and len(figures["deletion_curve"]) == 9
    assert figures["completeness_gap"] == pytest.approx(float(integrated.details["completeness_gap"][0]))
    assert seen[-1] == (1000, 1000) and all(0 <= d <= t for d, t in seen)
    verdicts = checks.verdicts(0)
    assert [v["check"] for v in verdicts] == ["deletion and insertion", "model randomisation", "completeness"]
    assert all(v["sentence"].endswith(".") for v in verdicts)
    flagged = [v for v in verdicts if v["check"] == "model randomisation"][0]
    assert ("do not trust it" in flagged["sentence"]) == (figures["randomisation_rank_correlation"][-1] >= FLAG_CORRELATION)
    before = [w.copy() for w in opened.model.get_weights()]
    with pytest.raises(Cancelled):
        run_checks(probe, batch, integrated, curves=False, progress=lambda d, t: d < 300)
    for a, b in zip(before, opened.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert CURVE_STEPS == 32


@pytest.fixture(scope="module")
def dark_model(keras):
    """6x6x1 input; conv (kernel 0, bias -1, ReLU) is 0 everywhere; Flatten, Dense(2, softmax) with a
    bias: the model answers class 0 (73%) whatever the image, and Grad-CAM at conv is 0 everywhere."""
    inputs = keras.Input((6, 6, 1))
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")
    dense = keras.layers.Dense(2, activation="softmax", name="probs")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    conv.set_weights([np.zeros((3, 3, 1, 2), np.float32), np.full(2, -1.0, np.float32)])
    dense.set_weights([np.ones((72, 2), np.float32), np.array([1.0, 0.0], np.float32)])
    return model


def test_an_empty_map_is_never_called_trustworthy(dark_model, rng):
    from actviz.explainers.checks import empty_map

    probe, batch = Probe(dark_model), rng.random((1, 6, 6, 1), dtype=np.float32)
    cam = explain(probe, batch, method="gradcam", layer="conv")
    assert not cam.heatmap.any() and empty_map(cam.heatmap[0])
    checks = run_checks(probe, batch, cam, steps=4, depths=1)
    assert checks.empty.tolist() == [True]
    # with only the top layer random, the conv is still 0 everywhere: the random map is empty too
    assert checks.randomisation.empty.tolist() == [[True]] and checks.randomisation.correlation[0, 0] == 0.0
    verdicts = checks.verdicts(0)
    assert [v["check"] for v in verdicts] == ["deletion and insertion", "model randomisation"]
    assert all(v["passed"] is None and v["state"] == "cannot tell" for v in verdicts), verdicts
    assert all("This heat map is empty" in v["sentence"] and "cannot tell" in v["sentence"] for v in verdicts)
    assert not any("depends on what the model learned" in v["sentence"] for v in verdicts)


def test_empty_map_tolerance_is_one_grey_level():
    from actviz.explainers.checks import EMPTY_SPREAD, empty_map

    assert EMPTY_SPREAD == 1 / 255
    assert empty_map(np.zeros((4, 4))) and empty_map(np.ones((4, 4))) and empty_map(np.full((4, 4), 0.3))
    almost = np.full((4, 4), 0.5)
    almost[0, 0] += 0.9 / 255  # less than one grey level: nothing a person could see
    assert empty_map(almost)
    almost[0, 0] += 0.2 / 255
    assert not empty_map(almost)


def test_a_class_the_model_gives_no_chance_cannot_fall_to_half(pixel_model):
    from actviz.explainers import checks

    model, w = pixel_model
    x = (-3.0 * np.sign(w))[None, :, :, None].astype(np.float32)  # logit_1 - logit_0 = -3 sum|w|: class 1 near 0
    probe = Probe(model)
    result = explain(probe, x, method="saliency", class_index=1)  # the gradient: w, whatever the image
    assert result.probability[0] < 1e-3 and not checks.empty_map(result.heatmap[0])
    verdict = run_checks(probe, x, result, steps=4, randomisation=False).verdicts(0)[0]
    assert verdict["passed"] is None and verdict["state"] == "cannot tell"
    assert verdict["sentence"].startswith("The model gives this class almost no chance (under 0.1%), so there is nothing for the map to explain")
    assert "falls to half" not in verdict["sentence"]


def test_a_comparison_with_an_empty_random_map_cannot_tell():
    from actviz.explainers.checks import Randomisation, randomisation_verdict

    layers = ["probs", "conv_2", "conv_1"]
    kept = Randomisation(layers=layers, correlation=np.array([[0.95, 0.2, 0.0]]), flagged=np.array([False]),
                         empty=np.array([[False, False, True]]))
    verdict = randomisation_verdict(kept, 0)
    assert verdict["passed"] is None and verdict["state"] == "cannot tell"
    assert verdict["sentence"].startswith("With every layer from probs down to conv_1 random, the method gives an empty map")
    changed = randomisation_verdict(Randomisation(layers=layers, correlation=np.array([[0.95, 0.2, 0.1]]), flagged=np.array([False]),
                                                  empty=np.zeros((1, 3), bool)), 0)
    assert changed["passed"] is True and changed["state"] == "passed" and "depends on what the model learned" in changed["sentence"]
    partly = randomisation_verdict(Randomisation(layers=layers, correlation=np.array([[0.4, 0.4, 0.4]]), flagged=np.array([False])), 0)
    assert partly["passed"] is None and partly["state"] == "partly" and "read it with care" in partly["sentence"]


def test_verdicts_speak_plainly_and_keep_their_sources_apart(demo):
    opened, batch = demo
    probe = opened.probe
    cam = explain(probe, batch, method="gradcam")
    verdicts = run_checks(probe, batch, cam, steps=8, depths=2).verdicts(0)
    for verdict in verdicts:
        assert {"check", "passed", "state", "sentence", "reference"} <= set(verdict)
        assert verdict["passed"] == {"passed": True, "failed": False}.get(verdict["state"])
        assert "et al." not in verdict["sentence"] and "correlation" not in verdict["sentence"] and "area under" not in verdict["sentence"]
        assert verdict["reference"].endswith(".")
    assert "Adebayo et al. 2018" in verdicts[1]["reference"] and "Spearman" in verdicts[1]["reference"]
    assert "similarity" in verdicts[1]["sentence"]
