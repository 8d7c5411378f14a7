import numpy as np
import pytest

from actviz.errors import LayerNotFoundError, NothingToShowError
from actviz.core.probe import Probe


def _plain_activations(keras, model, names, x):
    """Independent computation: Keras's own multi-output model over the named layers."""
    plain = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    return [np.asarray(a)[0] for a in plain(x)]


def test_run_flat_model_matches_plain_keras(keras, flat_model, rng):
    probe = Probe(flat_model)
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    result = probe.run(x, ["conv_1", "pool_1", "conv_2"])
    expected = _plain_activations(keras, flat_model, ["conv_1", "pool_1", "conv_2"], x)
    for name, want in zip(["conv_1", "pool_1", "conv_2"], expected):
        np.testing.assert_allclose(result.maps[name][0], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.predictions[0][0], np.asarray(flat_model(x))[0], rtol=1e-6)


def test_run_exact_values_with_hand_set_weights(keras):
    inputs = keras.Input((3, 3, 1))
    conv = keras.layers.Conv2D(1, 2, name="conv_1")
    model = keras.Model(inputs, keras.layers.Flatten()(conv(inputs)))
    conv.set_weights([np.ones((2, 2, 1, 1), np.float32), np.array([0.5], np.float32)])
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    result = Probe(model).run(x)
    # 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9, each plus the bias 0.5
    np.testing.assert_array_equal(result.maps["conv_1"][0, :, :, 0], [[12.5, 16.5], [24.5, 28.5]])


def test_nested_model_inner_layers_match_manual_computation(keras, nested_model, rng):
    probe = Probe(nested_model)
    names = [info.name for info in probe.default_layers]
    assert names[:3] == ["vgg_base/block1_conv1", "vgg_base/block1_conv2", "vgg_base/block1_pool"]
    x = rng.random((1, 32, 32, 3), dtype=np.float32)
    result = probe.run(x)
    base = nested_model.get_layer("vgg_base")
    value = x
    for layer in base.layers[1:]:  # layer by layer, by hand
        value = np.asarray(layer(value))
        np.testing.assert_allclose(result.maps[f"vgg_base/{layer.name}"][0], value[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.predictions[0][0], np.asarray(nested_model(x))[0], rtol=1e-5)


def test_nested_sequential_inside_sequential(keras, rng):
    inner = keras.Sequential([keras.Input((10, 10, 3)), keras.layers.Conv2D(3, 3, name="c1"), keras.layers.ReLU(name="r1")], name="inner")
    outer = keras.Sequential([keras.Input((10, 10, 3)), inner, keras.layers.Conv2D(2, 3, name="c2"), keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(2)])
    probe = Probe(outer)
    assert [i.name for i in probe.spatial_layers] == ["inner/c1", "inner/r1", "c2"]
    x = rng.random((1, 10, 10, 3), dtype=np.float32)
    maps = probe.run(x, ["inner/r1", "c2"]).maps
    manual = np.asarray(inner(x))
    np.testing.assert_allclose(maps["inner/r1"][0], manual[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["c2"][0], np.asarray(outer.get_layer("c2")(manual))[0], rtol=1e-5, atol=1e-6)


def test_branches_batchnorm_depthwise_multi_output(keras, rng):
    inputs = keras.Input((12, 16, 1), name="image")  # one channel, not square
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(inputs)
    y = keras.layers.BatchNormalization(name="bn")(x)
    y = keras.layers.Activation("relu", name="act")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    z = keras.layers.Add(name="add")([x, y])
    out1 = keras.layers.Dense(2, name="head_a")(keras.layers.GlobalAveragePooling2D()(z))
    out2 = keras.layers.Dense(1, name="head_b")(keras.layers.Flatten()(z))
    model = keras.Model(inputs, [out1, out2])
    bn = model.get_layer("bn")
    bn.set_weights([w + rng.random(w.shape, dtype=np.float32) for w in bn.get_weights()])
    probe = Probe(model)
    assert probe.input_shape == (12, 16, 1)
    names = ["conv_a", "bn", "act", "dw", "add"]
    assert [i.name for i in probe.spatial_layers] == names
    assert [i.name for i in probe.default_layers] == ["conv_a", "dw"]
    x = rng.random((1, 12, 16, 1), dtype=np.float32)
    result = probe.run(x, names)
    for name, want in zip(names, _plain_activations(keras, model, names, x)):
        np.testing.assert_allclose(result.maps[name][0], want, rtol=1e-5, atol=1e-5)
    assert len(result.predictions) == 2
    np.testing.assert_allclose(result.predictions[1][0], np.asarray(model(x)[1])[0], rtol=1e-5, atol=1e-5)


def test_dynamic_input_size(keras, rng):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, name="conv_1")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    probe = Probe(model)
    assert probe.input_shape == (None, None, 3)
    for shape in [(1, 9, 13, 3), (1, 20, 7, 3)]:
        result = probe.run(rng.random(shape, dtype=np.float32))
        assert result.maps["conv_1"].shape == (1, shape[1] - 2, shape[2] - 2, 2)


def test_run_does_one_forward_pass(keras, rng):
    class Counting(keras.layers.Layer):
        calls = 0

        def call(self, x):
            Counting.calls += 1
            return x

    inputs = keras.Input((8, 8, 3))
    x = Counting(name="count")(inputs)
    x = keras.layers.Conv2D(2, 3, name="c1")(x)
    x = keras.layers.Conv2D(2, 3, name="c2")(x)
    model = keras.Model(inputs, keras.layers.Flatten()(keras.layers.MaxPooling2D(name="p")(x)))
    probe = Probe(model)
    Counting.calls = 0
    probe.run(rng.random((1, 8, 8, 3), dtype=np.float32), ["c1", "c2", "p"])
    assert Counting.calls == 1


def test_model_without_spatial_layers_is_refused(keras):
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(NothingToShowError, match="input has shape"):
        Probe(model)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(NothingToShowError, match="no layer whose output is an image-like grid"):
        Probe(model)


def test_model_with_two_image_inputs_is_refused(keras):
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3)(keras.layers.Concatenate()([a, b]))
    with pytest.raises(NothingToShowError, match="takes 2 inputs"):
        Probe(keras.Model([a, b], x))


def test_layer_lookup_by_name_suffix_index_and_helpful_error(nested_model):
    probe = Probe(nested_model)
    assert probe.layer("block2_conv1").name == "vgg_base/block2_conv1"
    info = probe.layer("vgg_base/block1_pool")
    assert probe.layer(info.index) == info
    assert probe.layer(str(info.index)) == info
    with pytest.raises(LayerNotFoundError, match="vgg_base/block1_conv1"):
        probe.layer("nope")


def test_table_lists_containers_params_and_nesting(nested_model):
    table = Probe(nested_model).table
    base = next(row for row in table if row.name == "vgg_base")
    assert base.container and base.depth == 0 and base.params == nested_model.get_layer("vgg_base").count_params()
    conv = next(row for row in table if row.name == "vgg_base/block1_conv1")
    assert conv.depth == 1 and conv.params == 3 * 3 * 3 * 4 + 4 and conv.output_shape == (32, 32, 4)
    assert sum(row.params for row in table if not row.container) == nested_model.count_params()


def test_preprocessing_follows_the_models_first_layers(keras):
    """Rescaling: raw pixels, said as a fact; an adapted Normalization: a guess from its mean, said as one;
    neither (or one after the first convolution): the notebook's pixels / 255."""
    from actviz.inputs.preprocessing import choose_preprocessing

    def model_with(first):
        inputs = keras.Input((8, 8, 3))
        return keras.Model(inputs, keras.layers.Conv2D(2, 3)(first(inputs)))

    chosen = choose_preprocessing(Probe(model_with(keras.layers.Rescaling(1 / 255))))
    assert chosen.scaling == "none" and "Rescaling" in chosen.note and "suggests" not in chosen.note
    raw = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[3000.0] * 3)
    chosen = choose_preprocessing(Probe(model_with(raw)))
    assert chosen.scaling == "none" and "suggests" in chosen.note and "0..255" in chosen.note
    unit = keras.layers.Normalization(mean=[0.48, 0.45, 0.4], variance=[0.05] * 3)
    chosen = choose_preprocessing(Probe(model_with(unit)))
    assert chosen.scaling == "rescale" and "suggests" in chosen.note and "0..1" in chosen.note
    assert choose_preprocessing(Probe(model_with(keras.layers.Identity()))).scaling == "rescale"
    inputs = keras.Input((8, 8, 3))
    late = keras.Model(inputs, keras.layers.Rescaling(2.0)(keras.layers.Conv2D(2, 3)(inputs)))
    assert choose_preprocessing(Probe(late)).scaling == "rescale"
    assert choose_preprocessing(Probe(late), "tf").scaling == "tf"


def test_keras_ops_inside_a_functional_graph(keras, rng):
    """Plain operations (x * 2, keras.ops.relu) are graph nodes without weights: traced like layers."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inputs * 2.0 - 1.0)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.ops.relu(x)))
    probe = Probe(model)
    assert [info.name for info in probe.default_layers] == ["c"]
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    maps = probe.run(x, [info.name for info in probe.spatial_layers]).maps
    conv = model.get_layer("c")
    np.testing.assert_allclose(maps["c"][0], np.asarray(conv(x * 2.0 - 1.0))[0], rtol=1e-5, atol=1e-6)
    assert max(info.params for info in probe.table if info.name != "c") == 0


def test_views_are_bounded_and_the_scores_tensor_is_kept(flat_model):
    """Views past MAX_VIEWS let the least recently used go (built again when asked for); the scores'
    tensor every score model shares is never let go, however many views come and go."""
    from actviz.core.probe import MAX_VIEWS

    probe = Probe(flat_model)
    logits = probe.symbolic_logits()
    builds = []

    def view(key):
        return probe.cached_model(("test", key), lambda: builds.append(key) or key)

    for key in range(MAX_VIEWS + 5):
        view(key)
    assert view(MAX_VIEWS + 4) == MAX_VIEWS + 4 and builds.count(MAX_VIEWS + 4) == 1  # still kept
    view(0)
    assert builds.count(0) == 2  # let go, built again
    assert probe.symbolic_logits() is logits
