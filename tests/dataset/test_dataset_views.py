"""Receptive fields against gradients, and what the dashboard's data set view gets to draw."""

from __future__ import annotations

import numpy as np
import pytest

from actviz.dataset.receptive import receptive_field
from actviz.core.probe import Probe


def _gradient_box(feature_model, image, y, x):
    """Independent: the box around every input pixel with a non-zero gradient of position (y, x)."""
    import tensorflow as tf

    value = tf.constant(image[None], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(value)
        out = tf.reduce_sum(feature_model(value)[0, y, x])
    grad = np.abs(tape.gradient(out, value).numpy()[0]).sum(-1)
    rows, cols = np.nonzero(grad > 0)
    return (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1) if len(rows) else None


@pytest.fixture(scope="module")
def linear_net(keras):
    """Linear layers only (no ReLU, average pooling), so every pixel in the field has a gradient."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((37, 41, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", name="c1")(inputs)
    x = keras.layers.AveragePooling2D(2, name="p1")(x)
    x = keras.layers.ZeroPadding2D(((1, 0), (2, 1)), name="zp")(x)
    x = keras.layers.Conv2D(4, (5, 3), strides=2, padding="valid", name="c2")(x)
    side = keras.layers.Conv2D(4, 1, name="side")(x)
    x = keras.layers.Add(name="add")([x, side])
    x = keras.layers.Conv2D(4, 4, strides=3, padding="same", name="c4")(x)
    x = keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same", name="dilated")(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("layer", ["c1", "p1", "zp", "c2", "add", "c4"])
def test_receptive_field_equals_the_gradient_support(keras, linear_net, layer, rng):
    field = receptive_field(Probe(linear_net), layer, (37, 41))
    feature = keras.Model(linear_net.input, linear_net.get_layer(layer).output)
    height, width = feature.output.shape[1:3]
    image = rng.normal(size=(37, 41, 2))
    for y, x in [(0, 0), (height - 1, width - 1), (height // 2, width // 3), (1, width - 1)]:
        want = _gradient_box(feature, image, y, x)
        if want is not None:  # a position over padding only sees nothing
            assert field.box(y, x) == want, (layer, y, x)


def test_dilated_field_is_never_smaller_than_the_gradient_support(keras, linear_net, rng):
    field = receptive_field(Probe(linear_net), "dilated", (37, 41))
    feature = keras.Model(linear_net.input, linear_net.get_layer("dilated").output)
    for y, x in [(0, 0), (1, 2), (2, 1)]:
        top, left, bottom, right = _gradient_box(feature, rng.normal(size=(37, 41, 2)), y, x)
        box = field.box(y, x)
        assert box[0] <= top and box[1] <= left and box[2] >= bottom and box[3] >= right


def test_vgg16_fields_are_the_published_sizes(keras):
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    probe = Probe(base)
    sizes = {name: receptive_field(probe, name, (224, 224)).rows.size for name in ("block1_conv1", "block3_conv3", "block5_conv3", "block5_pool")}
    assert sizes == {"block1_conv1": 3, "block3_conv3": 40, "block5_conv3": 196, "block5_pool": 212}
    # position 0 of block5 is centred on pixel 7.5 (each 2x2 pooling moves it half a jump): 7.5 + 195 / 2 = 105
    assert receptive_field(probe, "block5_conv3", (224, 224)).box(0, 0) == (0, 0, 106, 106)
    assert receptive_field(probe, "block5_conv3", (224, 224)).box(7, 7) == (22, 22, 218, 218)  # 119.5 -/+ 97.5


def test_squeeze_and_excitation_gives_the_whole_image(keras):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    scale = keras.layers.Dense(4, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    x = keras.layers.Multiply(name="se")([x, keras.layers.Reshape((1, 1, 4))(scale)])
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    assert receptive_field(Probe(model), "se", (16, 16)).box(3, 3) == (0, 0, 16, 16)


# --- the dashboard's functions on the demo ------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run():
    from actviz.dataset import demo_digits, summarize
    from actviz.safety.models import open_model

    opened = open_model(None)
    source = demo_digits()
    summary = summarize(opened, source, indices=np.arange(300), layers=["block2_conv1", "block3_conv2"], top_k=6, batch_size=100, gradcam=True)
    return opened, source, summary


def test_top_images_show_the_channel_over_each_image(demo_run):
    from actviz.dataset.views import top_images

    opened, source, summary = demo_run
    rows = top_images(summary, source, "block2_conv1", 5, probe=opened.probe)
    top = summary.layers["block2_conv1"].top
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["image"] for r in rows] == [source.paths[i] for i in top.image[:, 5]]
    first = rows[0]
    assert first["picture"].dtype == np.uint8 and first["picture"].shape[2] == 3 and first["crop"].shape == (192, 192, 3)
    assert first["activation"].shape == first["picture"].shape
    # the fresh pass finds the stored peak where the summary says it is
    pixels = source.pixels(int(top.image[0, 5]), summary.layout.image_shape)
    activation = opened.probe.run(pixels[None].astype(np.float32) / 255.0, ["block2_conv1"]).maps["block2_conv1"][0, :, :, 5]
    assert activation.max() == pytest.approx(first["value"], rel=1e-5)
    assert np.unravel_index(activation.argmax(), activation.shape) == (first["y"], first["x"])
    top_, left, bottom, right = first["box"]
    assert bottom - top_ <= 10 and right - left <= 10  # block2_conv1 sees 10 x 10 pixels
    assert first["label"].startswith("digit ") and "peak" in first["caption"]


def test_class_and_cell_heatmaps_confusion_mistakes_dead(demo_run):
    from actviz.dataset import views

    opened, source, summary = demo_run
    heat = views.class_heatmaps(summary)
    assert len(heat) == 10 and sum(h["images"] for h in heat) == 300
    assert heat[0]["heatmap"].shape == summary.layout.cam_shape and heat[0]["picture"].dtype == np.uint8
    cells = views.cell_heatmaps(summary)
    assert all(not c["correct"] for c in cells) and sum(c["images"] for c in cells) == int((summary.label != summary.predicted).sum())
    rows = views.confusion_rows(summary)
    assert sum(r["images"] for r in rows) == 300 and all(0 <= r["right"] <= 1 for r in rows)
    assert rows[0]["digit 0"] == summary.confusion()[0, 0]
    wrong = views.mistakes(summary, source, probe=opened.probe, limit=4)
    assert len(wrong) == min(4, int((summary.label != summary.predicted).sum()))
    assert wrong[0]["confidence"] >= wrong[-1]["confidence"] and wrong[0]["overlay"].shape == wrong[0]["picture"].shape
    assert wrong[0]["label"] != wrong[0]["predicted"]
    dead = views.dead_channels(summary)
    assert [d["layer"] for d in dead] == ["block2_conv1", "block3_conv2"]
    assert dead[0]["dead"] == int(summary.channels("block2_conv1")["dead"].sum())
    ranking = views.channel_ranking(summary, "block3_conv2", limit=5)
    assert len(ranking) == 5 and ranking[0]["selectivity"] >= ranking[-1]["selectivity"]
    facts = views.overview(summary)
    assert facts["images"] == 300 and "right" in facts["text"] and set(views.CAPTIONS) >= {"channels", "heatmaps", "mistakes"}


def test_saved_summary_reopens_its_demo_source(demo_run):
    from actviz.dataset.summary import Summary
    from actviz.dataset.views import summary_source

    _, source, summary = demo_run
    again = Summary.load(summary.to_bytes())
    reopened, why = summary_source(again, None)
    assert reopened is not None and reopened.fingerprint == source.fingerprint and why == ""


def test_cache_key_follows_model_data_and_settings(demo_run):
    from actviz.dataset import demo_digits
    from actviz.dataset.views import cache_key

    opened, source, _ = demo_run
    key = cache_key(opened, source, top_k=9, gradcam=False)
    assert key == cache_key(opened, demo_digits(), gradcam=False, top_k=9)
    assert key != cache_key(opened, source, top_k=9, gradcam=True)
