import numpy as np
import pytest

from actviz.draw.compare import compare_maps
from actviz.errors import Cancelled, ChannelNotFoundError, ImageError
from actviz.draw.figures import tile_images
from actviz.featurevis.patterns import find_patterns, first_layer_kernels
from actviz.core.probe import Probe


def test_compare_shared_scale_difference_and_ranking():
    a = np.zeros((4, 4, 3), np.float32)
    b = np.zeros((4, 4, 3), np.float32)
    a[:, :, 0] = 1.0                      # channel 0 differs everywhere
    a[0, 0, 2], b[0, 0, 2] = 5.0, 5.0     # channel 2: the same in both
    b[:, :, 1] = np.arange(16).reshape(4, 4) / 16  # channel 1 differs a little
    result = compare_maps(a, b, per_row=3, cmap="gray")
    assert result.ranking.tolist() == [0, 1, 2] and result.scores[2] == 0
    # for people: channel 0 is 1 everywhere in a, 0 in b; over both, its values spread by 0.5: 2 apart
    assert result.rows(top=3) == [
        {"channel": 0, "how far apart": "2", "responds more to": "the first image"},
        {"channel": 1, "how far apart": f"{(15 / 32) / np.concatenate([a, b])[:, :, 1].std():.2g}", "responds more to": "the second image"},
        {"channel": 2, "how far apart": "0", "responds more to": "both alike"},
    ]
    # one scale for both: channel 2's identical pixels get identical levels
    ya, xa = result.grid_a.cell(2)
    np.testing.assert_array_equal(result.grid_a.index[ya:ya + 4, xa:xa + 4], result.grid_b.index[ya:ya + 4, xa:xa + 4])
    # the difference: 0 is the middle of the colour map; channel 0 (a - b = +1 = the largest) at the top
    yd, xd = result.difference.cell(2)
    assert np.all(result.difference.index[yd:yd + 4, xd:xd + 4] == 128)
    y0, x0 = result.difference.cell(0)
    assert np.all(result.difference.index[y0:y0 + 4, x0:x0 + 4] == 254)


def test_compare_identical_maps_give_a_white_difference(rng):
    a = rng.random((5, 5, 2), dtype=np.float32)
    result = compare_maps(a, a.copy())
    y, x = result.difference.cell(0)
    assert np.all(result.difference.index[y:y + 5, x:x + 5] == 128)
    np.testing.assert_array_equal(result.grid_a.index, result.grid_b.index)
    with pytest.raises(ImageError, match=r"feature maps of different sizes at this layer \(5 x 5 x 2 and 4 x 5 x 2"):
        compare_maps(a, a[:4])


def test_first_layer_kernels_hand_set(keras):
    inputs = keras.Input((5, 5, 3))
    conv = keras.layers.Conv2D(2, 2, name="first")
    model = keras.Model(inputs, keras.layers.Conv2D(1, 2)(conv(inputs)))
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[0, 0, 0, 0] = 2.0    # filter 0: pure red top-left
    kernel[1, 1, :, 1] = -1.0   # filter 1: dark bottom-right
    conv.set_weights([kernel, np.zeros(2, np.float32)])
    name, images = first_layer_kernels(Probe(model))
    assert name == "first" and images.shape == (2, 2, 2, 3)
    assert images[0, 0, 0].tolist() == [255, 128, 128] and images[0, 1, 1].tolist() == [128, 128, 128]
    assert images[1, 1, 1].tolist() == [0, 0, 0]
    assert tile_images(images, per_row=2, gap=1, zoom=3).shape == (6, 13, 3)


@pytest.mark.parametrize("method", ["plain", "robust"])
def test_find_patterns_raise_their_channel(flat_model, method):
    probe = Probe(flat_model)
    model = probe.feature_model("conv_2")
    grey = np.full((1, 8, 8, 3), 0.5, np.float32)
    before = np.asarray(model(grey))[0].mean(axis=(0, 1))
    alive = [int(c) for c in np.flatnonzero(before > 0)[:2]]
    assert len(alive) == 2
    steps = 12 if method == "plain" else 48  # the robust method climbs more slowly, and steadily
    patterns = find_patterns(probe, "conv_2", alive, method=method, steps=steps, seed=1).images
    assert patterns.shape == (2, 8, 8, 3) and patterns.dtype == np.uint8
    again = find_patterns(probe, "conv_2", alive, method=method, steps=steps, seed=1).images
    np.testing.assert_array_equal(patterns, again)  # deterministic
    # the model inputs found excite their own channel far more than grey, as plain Keras measures it
    found = find_patterns(probe, "conv_2", alive, method=method, steps=steps, seed=1)
    np.testing.assert_array_equal(found.images, patterns)
    after = np.asarray(model(found.inputs)).mean(axis=(1, 2))
    gain = 2.0 if method == "plain" else 1.5  # robust keeps to patterns that survive warps of an 8x8 picture
    assert after[0, alive[0]] > gain * before[alive[0]] and after[1, alive[1]] > gain * before[alive[1]]
    np.testing.assert_allclose(found.activation, after[[0, 1], alive], rtol=1e-5)
    assert found.inputs.min() >= 0.0 and found.inputs.max() <= 1.0  # inside the model's input range


def test_plain_patterns_stay_in_the_value_range_given(flat_model):
    patterns = find_patterns(Probe(flat_model), "conv_2", [0, 1], method="plain", steps=20, value_range=(-1.0, 1.0))
    assert patterns.inputs.min() >= -1.0 - 1e-6 and patterns.inputs.max() <= 1.0 + 1e-6
    assert patterns.inputs.min() < -0.5 or patterns.inputs.max() > 0.5  # it did climb out of the grey start


@pytest.mark.parametrize("method", ["plain", "robust"])
def test_find_patterns_cancel_and_bad_channels(flat_model, method):
    probe = Probe(flat_model)
    with pytest.raises(Cancelled):
        find_patterns(probe, "conv_1", [0], method=method, steps=5, progress=lambda step, steps: step < 2)
    with pytest.raises(ChannelNotFoundError, match="channels 0 to 5"):
        find_patterns(probe, "conv_1", [6], method=method)


@pytest.mark.parametrize("key,layer", [("nested_vgg16", "block2_conv1"), ("seq_mobilenetv2", "block_1_expand")])
def test_filters_and_compare_on_keras2_nested_models(keras2_files, key, layer):
    """On files written by Keras 2 (a VGG16 nested in a Functional model, a MobileNetV2 in a
    Sequential one): patterns raise their channel as measured by tf_keras itself, and the
    comparison scores match a plain numpy computation on tf_keras's feature maps."""
    import tf_keras

    from actviz.safety.loading import load_model

    probe = Probe(load_model(keras2_files[key]).model)
    name = probe.layer(layer).name
    reference = tf_keras.models.load_model(keras2_files[key], compile=False)
    base = reference.layers[1] if key == "nested_vgg16" else reference.layers[0]
    sub = tf_keras.Model(base.input, base.get_layer(layer).output)

    rng = np.random.default_rng(5)
    a, b = rng.random((2, 1, 32, 32, 3), dtype=np.float32)
    fa, fb = sub.predict(a, verbose=0)[0], sub.predict(b, verbose=0)[0]
    result = compare_maps(probe.run(a, [name]).maps[name][0], probe.run(b, [name]).maps[name][0])
    both = np.concatenate([fa, fb], axis=0).astype(np.float64)
    expected = np.abs(fa - fb).mean(axis=(0, 1)) / np.where(both.std(axis=(0, 1)) > 0, both.std(axis=(0, 1)), 1)
    np.testing.assert_allclose(result.scores, expected, rtol=1e-3, atol=1e-5)

    grey = np.full((1, 32, 32, 3), 0.5, np.float32)
    before = sub.predict(grey, verbose=0)[0].mean(axis=(0, 1))
    channel = int(np.argmax(before))  # a channel that responds, so there is a gradient to climb
    for method in ("plain", "robust"):
        found = find_patterns(probe, name, [channel], method=method, steps=12, seed=1)
        after = sub.predict(found.inputs, verbose=0)[0].mean(axis=(0, 1))
        assert after[channel] > before[channel], method
        assert after[channel] == pytest.approx(float(found.activation[0]), rel=1e-3)
