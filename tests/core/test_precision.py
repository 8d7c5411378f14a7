"""bfloat16: the twin of a model (its layers in bfloat16, the same weights, the outputs in float32,
nested models too), what it says where the processor cannot, and how far its answers are from
float32's: feature maps, and a data set's top images, statistics and heat maps against an
independent float32 computation, within the tolerances the README states."""

import numpy as np
import pytest
from PIL import Image

from actviz.core import precision
from actviz.core.precision import at_precision, bfloat16_twin, choose_precision, precision_of, probe_at
from actviz.core.probe import Probe
from actviz.errors import ChoiceError

#: What the README states for bfloat16 against float32 (relative to each channel's largest value).
MAP_TOLERANCE = 0.02
#: Mean heat maps (0..1), absolute.
HEAT_TOLERANCE = 0.05


def test_the_twin_computes_in_bfloat16_with_the_same_weights_and_float32_outputs(nested_model):
    twin = bfloat16_twin(nested_model)
    base = twin.get_layer("vgg_base")
    assert {layer.dtype_policy.name for layer in base.layers[1:]} == {"mixed_bfloat16"}  # nested layers too
    assert twin.get_layer("probs").dtype_policy.name == "float32"  # the softmax keeps its digits
    for mine, theirs in zip(twin.get_weights(), nested_model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert {layer.dtype_policy.name for layer in nested_model.get_layer("vgg_base").layers} == {"float32"}  # untouched


def test_the_twins_maps_and_answers_are_close_to_float32(nested_model, rng):
    probe = Probe(nested_model)
    twin = probe_at(probe, "bfloat16")
    assert precision_of(twin) == "bfloat16" and precision_of(probe) == "float32"
    assert probe_at(probe, "bfloat16") is twin and probe_at(probe, "float32") is probe
    x = rng.random((4, 32, 32, 3), dtype=np.float32)
    exact, rounded = probe.run(x, ["block2_conv2"]), twin.run(x, ["block2_conv2"])
    a, b = exact.maps["vgg_base/block2_conv2"], rounded.maps["vgg_base/block2_conv2"]
    assert b.dtype == np.float32
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < MAP_TOLERANCE
    np.testing.assert_allclose(rounded.predictions[0], exact.predictions[0], atol=0.02)


def test_a_processor_without_bfloat16_runs_in_float32_and_says_so(monkeypatch, nested_model):
    from actviz.safety.models import open_model

    with pytest.raises(ChoiceError, match="Unknown precision 'half'"):
        choose_precision("half")
    monkeypatch.setattr(precision, "supports_bfloat16", lambda: False)
    chosen = choose_precision("bfloat16")
    assert chosen.name == "float32" and "no bfloat16 instructions" in chosen.note
    opened = at_precision(open_model(nested_model), "bfloat16")
    assert precision_of(opened.probe) == "float32" and any("no bfloat16 instructions" in n for n in opened.notes)
    monkeypatch.setattr(precision, "supports_bfloat16", lambda: True)
    assert precision_of(at_precision(open_model(nested_model), "bfloat16").probe) == "bfloat16"


def test_a_data_set_in_bfloat16_agrees_with_float32(nested_model, tmp_path, monkeypatch):
    """Top images, channel statistics and mean heat maps of a bfloat16 pass against float32 maps
    computed independently (plain Keras) and a float32 pass."""
    import keras

    from actviz.dataset import open_source, summarize
    from actviz.safety.models import open_model

    rng = np.random.default_rng(3)
    for i in range(24):
        folder = tmp_path / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    source = open_source(tmp_path)
    monkeypatch.setattr(precision, "supports_bfloat16", lambda: True)  # the twin runs (emulated) on any processor
    opened = open_model(nested_model)
    layers = ["block1_conv2", "block2_conv2"]
    exact = summarize(opened, source, layers=layers, top_k=4, gradcam=True, batch_size=8)
    rounded = summarize(at_precision(opened, "bfloat16"), source, layers=layers, top_k=4, gradcam=True, batch_size=8)
    assert any("bfloat16" in note for note in rounded.meta["notes"])
    pixels = np.stack([np.asarray(Image.open(tmp_path / path)) for path in source.paths]).astype(np.float32) / 255.0
    maps = keras.ops.convert_to_tensor(pixels)
    for layer in nested_model.get_layer("vgg_base").layers[1:]:  # the base's layers one by one, in float32
        maps = layer(maps)
        if layer.name == "block2_conv2":
            break
    peaks = np.asarray(maps).max(axis=(1, 2))  # (images, channels)
    name = "vgg_base/block2_conv2"
    scale = peaks.max(axis=0)  # each channel's largest value
    top_exact, top_rounded = exact.layers[name].top, rounded.layers[name].top
    np.testing.assert_allclose(top_exact.value, peaks[top_exact.image, np.arange(peaks.shape[1])], rtol=1e-5)  # float32 is exact
    # every image bfloat16 ranks in a channel's top 4 is, in float32, within the tolerance of the 4th best
    kth = np.sort(peaks, axis=0)[-4]
    chosen = peaks[top_rounded.image, np.arange(peaks.shape[1])]
    assert (chosen >= kth - MAP_TOLERANCE * scale).all()
    assert np.abs(top_rounded.value - top_exact.value).max() <= MAP_TOLERANCE * scale.max()
    for layer in [f"vgg_base/{n}" for n in layers]:
        a, b = exact.channels(layer), rounded.channels(layer)
        reach = np.maximum(np.abs(a["mean"]).max(), 1e-6)
        np.testing.assert_allclose(b["mean"], a["mean"], atol=MAP_TOLERANCE * reach)
        np.testing.assert_allclose(b["std"], a["std"], atol=MAP_TOLERANCE * reach)
    for label, (heat, count) in exact.mean_heatmaps().items():
        np.testing.assert_allclose(rounded.mean_heatmaps()[label][0], heat, atol=HEAT_TOLERANCE)
