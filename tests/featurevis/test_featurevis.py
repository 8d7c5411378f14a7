"""Robust feature visualisation: hand-set filters with known optima, determinism, cancellation,
dead filters, every kind of model actviz opens, the class objective, and the measures."""

import numpy as np
import pytest

from actviz.errors import BudgetError, Cancelled, ChannelNotFoundError, ChoiceError, ClassNotFoundError
from actviz.featurevis.measures import high_frequency_share, robustness
from actviz.featurevis.objectives import target_activations
from actviz.featurevis.param import input_mapping, spectrum_scale
from actviz.featurevis.patterns import find_patterns
from actviz.featurevis.render import robust_patterns
from actviz.featurevis.transforms import random_transforms, transform_images
from actviz.inputs.preprocessing import PREPROCESSING, preprocess
from actviz.core.probe import Probe

#: Few steps and a small picture keep these tests quick; the optima below are reached well before.
STEPS = 48


def _edge_model(keras, *, bias: float = 0.0):
    """32x32 grey input; conv 'edges' (3x3, ReLU): channel 0 a vertical edge (dark left, bright
    right), channel 1 a horizontal edge (dark top, bright bottom), channel 2 the vertical edge with
    ``bias`` (a large negative one makes it dead); then GAP and a 2-class softmax."""
    inputs = keras.Input((32, 32, 1), name="image")
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="edges")
    x = conv(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", name="probs")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, 3, 1, 3), np.float32)
    kernel[:, :, 0, 0] = [[-1, 0, 1]] * 3
    kernel[:, :, 0, 1] = np.transpose([[-1, 0, 1]] * 3)
    kernel[:, :, 0, 2] = [[-1, 0, 1]] * 3
    conv.set_weights([kernel, np.array([0.0, 0.0, bias], np.float32)])
    return model


@pytest.fixture(scope="module")
def edge_probe(keras):
    return Probe(_edge_model(keras, bias=-100.0))


def _orientation(images: np.ndarray) -> np.ndarray:
    """float (N,): energy of left-right changes over energy of up-down changes, per image. Far
    above 1: the picture is made of vertical lines/edges; far below 1: of horizontal ones."""
    x = np.asarray(images, np.float64)[..., 0]
    across = np.square(np.diff(x, axis=2)).sum(axis=(1, 2))
    down = np.square(np.diff(x, axis=1)).sum(axis=(1, 2))
    return across / np.maximum(down, 1e-12)


@pytest.mark.parametrize("method", ["robust", "plain"])
def test_edge_filters_give_patterns_of_their_orientation(edge_probe, method):
    patterns = find_patterns(edge_probe, "edges", [0, 1], method=method, steps=STEPS, preprocessing="rescale")
    ratio = _orientation(patterns.inputs)
    assert ratio[0] > 4.0, f"the vertical-edge pattern is not vertical: {ratio[0]:.2f}"
    assert ratio[1] < 0.25, f"the horizontal-edge pattern is not horizontal: {ratio[1]:.2f}"
    # what was reported is what the model gives on the pattern, and far above the start
    model = edge_probe.feature_model("edges")
    direct = np.asarray(model(patterns.inputs)).mean(axis=(1, 2))[[0, 1], [0, 1]]
    np.testing.assert_allclose(patterns.activation, direct, rtol=1e-5)
    assert np.all(patterns.activation > 3 * np.maximum(patterns.start, 0.02))
    assert not patterns.dead.any()
    # the picture shown (robust: the very pixels given to the model) in 0..255
    assert patterns.images.dtype == np.uint8 and patterns.images.shape == (2, 32, 32, 1)
    if method == "robust":
        np.testing.assert_allclose(patterns.images / 255.0, patterns.inputs, atol=0.5 / 255 + 1e-6)


def test_spectrum_of_the_vertical_pattern_lies_along_the_horizontal_frequencies(edge_probe):
    """The same fact read from the 2-D spectrum: a vertical pattern varies left to right only, so
    its power is at horizontal frequencies (fx), not vertical ones (fy)."""
    patterns = robust_patterns(edge_probe, "edges", [0], steps=STEPS, preprocessing="rescale")
    x = patterns.inputs[0, :, :, 0] - patterns.inputs[0, :, :, 0].mean()
    power = np.abs(np.fft.fft2(x)) ** 2
    fy, fx = np.abs(np.fft.fftfreq(32))[:, None], np.abs(np.fft.fftfreq(32))[None, :]
    assert power[fx > fy].sum() > 4 * power[fy > fx].sum()


def _colour_model(keras):
    """32x32x3 input; a 1x1 ReLU conv 'colour' whose channels prefer model-input channel 0, 1, 2
    (+1 for it, -0.5 for each other)."""
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(3, 1, activation="relu", name="colour")
    model = keras.Model(inputs, conv(inputs))
    kernel = np.full((1, 1, 3, 3), -0.5, np.float32)
    kernel[0, 0, [0, 1, 2], [0, 1, 2]] = 1.0
    conv.set_weights([kernel, np.zeros(3, np.float32)])
    return model


@pytest.mark.parametrize("preprocessing,order", [("rescale", [0, 1, 2]), ("caffe", [2, 1, 0]), ("tf", [0, 1, 2])])
def test_colour_filters_give_their_colour_in_the_models_own_range(keras, preprocessing, order):
    """Channel k prefers model-input channel k (+1 for it, -0.5 for the others); with 'caffe'
    (BGR) that is blue, green, red. The pattern's mean colour must be that colour: the largest
    channel by far, and its departure from grey pointing the filter's way."""
    probe = Probe(_colour_model(keras))
    patterns = robust_patterns(probe, "colour", [0, 1, 2], steps=128, preprocessing=preprocessing)
    mean = patterns.images.reshape(3, -1, 3).mean(axis=1) / 255.0  # (pattern, RGB)
    for k, colour in enumerate(order):
        assert mean[k, colour] > np.delete(mean[k], colour).max() + 0.25, (k, mean[k])
        preferred = np.full(3, -0.5)
        preferred[colour] = 1.0
        away = mean[k] - 0.5
        assert away @ preferred / (np.linalg.norm(away) * np.linalg.norm(preferred)) > 0.9, (k, mean[k])
    # the inputs are exactly the pixels shown, preprocessed as the model expects
    np.testing.assert_allclose(patterns.inputs, preprocess(patterns.images, preprocessing), atol=1.0 if preprocessing == "caffe" else 0.01)


def test_same_seed_same_pattern_and_a_pattern_does_not_depend_on_its_batch(edge_probe):
    first = robust_patterns(edge_probe, "edges", [0, 1], steps=12, seed=3)
    again = robust_patterns(edge_probe, "edges", [0, 1], steps=12, seed=3)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.inputs, again.inputs)
    other = robust_patterns(edge_probe, "edges", [0, 1], steps=12, seed=4)
    assert np.abs(other.inputs - first.inputs).max() > 0.05
    alone = robust_patterns(edge_probe, "edges", [1], steps=12, seed=3)
    np.testing.assert_allclose(alone.inputs[0], first.inputs[1], atol=1e-4)
    plain = [find_patterns(edge_probe, "edges", [0, 1], method="plain", steps=5, seed=3).images for _ in range(2)]
    np.testing.assert_array_equal(*plain)


@pytest.mark.parametrize("method", ["robust", "plain"])
def test_cancel_stops_with_cancelled(edge_probe, method):
    calls = []

    def progress(step, steps):
        calls.append((step, steps))
        return step < 3

    with pytest.raises(Cancelled):
        find_patterns(edge_probe, "edges", [0, 1], method=method, steps=40, progress=progress)
    assert calls == [(1, 40), (2, 40), (3, 40)]


@pytest.mark.parametrize("method", ["robust", "plain"])
def test_dead_filter_is_reported_not_drawn(edge_probe, method):
    """Channel 2 is the vertical edge with bias -100: zero for every input in 0..1, so no gradient."""
    patterns = find_patterns(edge_probe, "edges", [0, 2], method=method, steps=10, preprocessing="rescale")
    assert patterns.dead.tolist() == [False, True]
    assert patterns.activation[1] == 0.0
    assert np.all(patterns.images[1] == 128)  # flat grey, never noise
    assert patterns.images[0].std() > 10
    words = patterns.captions()
    assert "dead" in words[1] and "dead" not in words[0]
    assert "1 of 2 never respond" in patterns.note()
    assert [row["dead"] for row in patterns.rows()] == [False, True]


def test_a_channel_silent_on_grey_is_woken_not_called_dead(keras):
    """A ReLU channel that is zero on every nearly grey picture (it needs a dark ground: bias -0.3
    against pixels near 0.5) still responds to darker pictures; it must get a pattern."""
    inputs = keras.Input((24, 24, 1))
    conv = keras.layers.Conv2D(1, 3, activation="relu", name="dark")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.full((3, 3, 1, 1), -1 / 9, np.float32), np.array([0.3], np.float32)])  # fires where mean < 0.3
    probe = Probe(model)
    grey = np.full((1, 24, 24, 1), 0.5, np.float32)
    assert np.asarray(model(grey)).max() == 0.0
    for method in ("robust", "plain"):
        patterns = find_patterns(probe, "dark", [0], method=method, steps=STEPS, preprocessing="rescale")
        assert not patterns.dead[0], method
        assert patterns.activation[0] > 0.1 and patterns.inputs.mean() < 0.4, method  # darker than grey (0.3 at black)


def test_neuron_objective_is_the_centre_of_the_map(edge_probe):
    patterns = find_patterns(edge_probe, "edges", [0], method="plain", objective="neuron", steps=10, preprocessing="rescale")
    maps = np.asarray(edge_probe.feature_model("edges")(patterns.inputs))
    assert patterns.activation[0] == pytest.approx(maps[0, 16, 16, 0], rel=1e-5)
    assert patterns.activation[0] > 1.0  # from about 0 on grey to a full edge at the centre
    # only the centre's 3x3 neighbourhood reaches that neuron: plain ascent moves those pixels to
    # black (left) and white (right) and leaves every other one at its start (grey, 0.45..0.55)
    x = patterns.inputs[0, :, :, 0]
    np.testing.assert_allclose(x[15:18, 15], 0.0, atol=1e-6)
    np.testing.assert_allclose(x[15:18, 17], 1.0, atol=1e-6)
    outside = np.ones_like(x, bool)
    outside[15:18, 15:18] = False
    assert np.all(np.abs(x[outside] - 0.5) <= 0.05 + 1e-6)
    assert "the centre of channel 0 of edges" in patterns.captions()[0]


def test_class_objective_raises_its_class_logit(keras, flat_model):
    """A hand-set colour classifier (class k: the mean of a ReLU detector of model-input channel k,
    as in the colour model): its class patterns take their class's colour, raise their class's
    logit and make the model choose that class, checked in numpy from the weights; and on a
    trained-like random model, the logits match an independent computation (GAP features times
    the Dense weights) and rise."""
    inputs = keras.Input((16, 16, 3))
    colour = _colour_model(keras).get_layer("colour")
    head = keras.layers.Dense(3, activation="softmax", name="probs")
    model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(colour(inputs))))
    head.set_weights([np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    probe = Probe(model)
    patterns = robust_patterns(probe, None, [0, 2], objective="class", steps=STEPS, class_names=["red", "green", "blue"])
    kernel = colour.get_weights()[0][0, 0]  # (3 inputs, 3 detectors)
    logits = np.maximum(patterns.inputs @ kernel, 0).mean(axis=(1, 2))  # the model's logits, in numpy
    np.testing.assert_allclose(patterns.activation, logits[[0, 1], [0, 2]], rtol=1e-4, atol=1e-6)
    assert patterns.start.max() < 0.05 and np.all(patterns.activation > 0.3)
    assert np.argmax(logits, axis=1).tolist() == [0, 2]
    assert patterns.captions()[1].startswith("blue: reaches")

    probe = Probe(flat_model)
    patterns = robust_patterns(probe, None, [0, 2], objective="class", steps=STEPS)
    gap = keras.Model(flat_model.input, flat_model.get_layer("gap").output)
    weights, bias = flat_model.get_layer("probs").get_weights()
    reached = np.asarray(gap(patterns.inputs)) @ weights + bias
    np.testing.assert_allclose(patterns.activation, reached[[0, 1], [0, 2]], rtol=1e-4, atol=1e-5)
    assert np.all(patterns.activation > patterns.start + 0.05)
    with pytest.raises(ClassNotFoundError, match="numbered 0 to 2"):
        robust_patterns(probe, None, [3], objective="class")


def test_class_objective_of_a_single_sigmoid_output(keras):
    """One sigmoid unit is two classes: class 1 raises the logit z, class 0 lowers it (its score is -z)."""
    keras.utils.set_random_seed(7)  # unseeded, some draws leave every ReLU of the pattern dead and z cannot move
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    probe = Probe(model)
    patterns = robust_patterns(probe, None, [0, 1], objective="class", steps=24)
    z = np.asarray(probe.logits_model()(patterns.inputs)[0])[:, 0]
    np.testing.assert_allclose(patterns.activation, [-z[0], z[1]], rtol=1e-4, atol=1e-5)
    assert z[0] < z[1]


def test_nested_base_pattern_raises_its_channel(nested_model):
    probe = Probe(nested_model)
    patterns = robust_patterns(probe, "block2_conv1", [0, 1], steps=24)
    assert patterns.layer == "vgg_base/block2_conv1"
    base = nested_model.get_layer("vgg_base")
    import keras

    inner = keras.Model(base.input, base.get_layer("block2_conv1").output)
    direct = np.asarray(inner(patterns.inputs)).mean(axis=(1, 2))
    np.testing.assert_allclose(patterns.activation, direct[[0, 1], [0, 1]], rtol=1e-4, atol=1e-6)
    live = ~patterns.dead
    assert live.any() and np.all(patterns.activation[live] > patterns.start[live])


def test_keras2_file_pattern_raises_its_channel_as_tf_keras_measures_it(keras2_files):
    """A VGG16 nested in a Functional model, written by Keras 2 and rebuilt by actviz: the pattern
    raises its channel, measured by tf_keras on the original file."""
    import tf_keras

    from actviz.safety.loading import load_model

    probe = Probe(load_model(keras2_files["nested_vgg16"]).model)
    reference = tf_keras.models.load_model(keras2_files["nested_vgg16"], compile=False)
    base = reference.layers[1]
    sub = tf_keras.Model(base.input, base.get_layer("block2_conv2").output)
    grey = np.full((1, 32, 32, 3), 0.5, np.float32)
    channel = int(np.argmax(sub.predict(grey, verbose=0)[0].mean(axis=(0, 1))))
    patterns = robust_patterns(probe, "block2_conv2", [channel], steps=16)
    theirs = sub.predict(patterns.inputs, verbose=0)[0].mean(axis=(0, 1))[channel]
    assert theirs == pytest.approx(float(patterns.activation[0]), rel=1e-3)
    assert theirs > 1.5 * sub.predict(grey, verbose=0)[0].mean(axis=(0, 1))[channel]


def test_bad_choices_are_refused_in_words(edge_probe):
    with pytest.raises(ChannelNotFoundError, match="channels 0 to 2"):
        robust_patterns(edge_probe, "edges", [3])
    with pytest.raises(ChoiceError, match="Choose one of: channel, neuron, class"):
        robust_patterns(edge_probe, "edges", [0], objective="pixel")
    with pytest.raises(ChoiceError, match="Choose one of: plain, robust"):
        find_patterns(edge_probe, "edges", [0], method="lucid")
    with pytest.raises(ChoiceError, match="Choose a layer"):
        robust_patterns(edge_probe, None, [0])


def test_budget_is_checked_before_any_work(keras):
    probe = Probe(_edge_model(keras), max_bytes=10_000)
    with pytest.raises(BudgetError):
        robust_patterns(probe, "edges", [0, 1])


# --- the pieces, against independent computations ------------------------------------------


@pytest.mark.parametrize("method", sorted(PREPROCESSING))
@pytest.mark.parametrize("channels", [1, 3])
def test_input_mapping_is_the_preprocessing(method, channels, rng):
    pixels = rng.integers(0, 256, (2, 5, 4, channels)).astype(np.uint8)
    matrix, offset = input_mapping(channels, preprocessing=method)
    np.testing.assert_allclose(pixels / 255.0 @ matrix + offset, preprocess(pixels, method), rtol=1e-5, atol=1e-4)
    matrix, offset = input_mapping(channels, value_range=(-2.0, 6.0))
    greys = np.repeat(np.array([[0.0], [0.5], [1.0]]), channels, axis=1)
    np.testing.assert_allclose(greys @ matrix + offset, np.repeat(np.array([[-2.0], [2.0], [6.0]]), channels, axis=1))


def test_spectrum_scale_follows_one_over_frequency():
    scale = spectrum_scale(8, 10, decay=1.5)
    assert scale.shape == (8, 6)
    assert scale[0, 0] == pytest.approx(10**1.5)  # the constant term: 1 / (1/size) ** decay
    assert scale[0, 5] == pytest.approx(0.5**-1.5)  # fx = 0.5 cycles per pixel
    assert scale[2, 0] == pytest.approx(0.25**-1.5)  # fy = 2/8


def test_high_frequency_share_of_known_pictures():
    y, x = np.mgrid[:32, :32]
    checker = ((x + y) % 2)[None, :, :, None].astype(float)
    smooth = np.sin(2 * np.pi * x / 32)[None, :, :, None]
    share = high_frequency_share(np.concatenate([checker, smooth, np.zeros_like(smooth)]))
    np.testing.assert_allclose(share, [1.0, 0.0, 0.0], atol=1e-9)


def test_transforms_shift_exactly_and_leave_inputs_alone():
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, 4, 4, 0] = 1.0
    keep = image.copy()
    rng = [np.random.default_rng(0)]
    still = random_transforms(rng, (9, 9), shift=0.0, scale=(1.0, 1.0), rotate=0.0)
    np.testing.assert_allclose(transform_images(image, still).numpy(), image, atol=1e-6)
    from actviz.featurevis.transforms import _warp

    moved = transform_images(image, np.array([_warp(2, -1, 1.0, 0.0, 9, 9)], np.float32)).numpy()
    assert np.argwhere(moved[0, :, :, 0] > 0.5).tolist() == [[3, 6]]  # two right, one up
    np.testing.assert_array_equal(image, keep)


def test_robustness_is_one_without_warps_and_leaves_inputs_alone(edge_probe):
    patterns = robust_patterns(edge_probe, "edges", [0, 1], steps=12)
    inputs = patterns.inputs.copy()
    kept = robustness(edge_probe, "edges", [0, 1], inputs, transforms=3, shift=0.0, scale=(1.0, 1.0), rotate=0.0)
    np.testing.assert_allclose(kept, 1.0, rtol=1e-5)
    np.testing.assert_array_equal(inputs, patterns.inputs)
    assert np.all(target_activations(edge_probe, "edges", [0, 1], inputs) == patterns.activation)


def test_patterns_show_themselves_in_a_notebook(edge_probe):
    patterns = robust_patterns(edge_probe, "edges", [0, 2], steps=4)
    assert patterns._repr_png_().startswith(b"\x89PNG")
    assert patterns.picture(1, side=128).shape == (128, 128, 3) and np.all(patterns.picture(1) == 128)
    assert patterns.picture(side=64).shape == (64, 64 * 2 + 4, 3)
    assert "shifted, scaled and turned" in patterns.note()


# --- the command line ------------------------------------------------------------------------


def test_cli_filters_method_and_objective(tmp_path, capsys):
    from actviz.cli import main

    out = tmp_path / "robust"
    assert main(["filters", "--layer", "block2_conv2", "--channels", "2", "3", "--steps", "6", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["kernels_block1_conv1.png", "patterns_block2_conv2.png"]
    said = capsys.readouterr().out
    assert "robust" in said and "channel 3 of block2_conv2: no pattern" in said  # channel 3 is dead on every digit
    assert main(["filters", "--method", "plain", "--objective", "neuron", "--layer", "block1_conv2", "--channels", "0",
                 "--steps", "3", "--out", str(tmp_path / "plain")]) == 0
    assert main(["filters", "--objective", "class", "--channels", "7", "--steps", "3", "--out", str(tmp_path / "class")]) == 0
    assert sorted(p.name for p in (tmp_path / "class").iterdir()) == ["kernels_block1_conv1.png", "patterns_classes.png"]
    assert "digit 7: reaches" in capsys.readouterr().out
    assert main(["filters", "--channels", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--layer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["filters", "--method", "fancy", "--layer", "block1_conv1", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2 and "invalid choice: 'fancy'" in capsys.readouterr().err
