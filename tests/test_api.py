"""The library's contract: everything actviz.activations / actviz.grad_cam accept and refuse,
checked against plain Keras on the same model."""

import io
import re

import numpy as np
import pytest
from PIL import Image

import actviz
from actviz.demo import samples as demo_samples
from actviz.errors import ChoiceError, ImageError, LayerNotFoundError


def _plain(keras, model, names, x):
    """Independent computation: Keras's own multi-output model over the named layers."""
    plain = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    return [np.asarray(a) for a in plain(x)]


@pytest.fixture(scope="module")
def pixels():
    """Five RGB images, 8x8, uint8, and the same scaled by 1/255 as the model input."""
    values = np.random.default_rng(11).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    return values


def test_one_uint8_image_with_and_without_batch_axis(keras, flat_model, pixels):
    names = ["conv_1", "pool_1", "conv_2"]
    expected = _plain(keras, flat_model, names, pixels[:1].astype(np.float32) / 255.0)
    for given in (pixels[0], pixels[:1], [pixels[0]]):
        maps = actviz.activations(flat_model, given, names)
        assert list(maps) == names and maps.count == 1
        for name, want in zip(names, expected):
            np.testing.assert_allclose(maps[name], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(maps.predictions, np.asarray(flat_model(pixels[:1] / 255.0)), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(maps.pixels, pixels[:1])


def test_floats_are_the_model_input_never_divided_twice(keras, flat_model, pixels):
    scaled = pixels.astype(np.float32) / 255.0
    from_floats = actviz.activations(flat_model, scaled, ["conv_2"])
    from_pixels = actviz.activations(flat_model, pixels, ["conv_2"])
    np.testing.assert_allclose(from_floats["conv_2"], from_pixels["conv_2"], rtol=1e-6, atol=1e-7)
    assert from_floats.pixels is None and "as given" in from_floats.preprocessing
    with pytest.raises(ChoiceError, match="scale them again"):
        actviz.activations(flat_model, scaled, preprocess="rescale")
    with pytest.warns(UserWarning, match="pass them as uint8"):
        actviz.activations(flat_model, pixels.astype(np.float32), ["conv_1"])  # raw 0..255 as floats: said once
    before = pixels.copy()
    actviz.activations(flat_model, pixels)
    np.testing.assert_array_equal(pixels, before)  # inputs are never modified in place


def test_batch_of_five_equals_five_single_calls(flat_model, pixels):
    batch = actviz.activations(flat_model, pixels, "all")
    for index in range(5):
        single = actviz.activations(flat_model, pixels[index], "all")
        for name in batch:
            np.testing.assert_allclose(batch[name][index], single[name][0], rtol=1e-5, atol=1e-6)
    cams = actviz.grad_cam(flat_model, pixels, class_index=2)
    for index in range(5):
        one = actviz.grad_cam(flat_model, pixels[index], class_index=2)
        np.testing.assert_allclose(cams.heatmap[index], one.heatmap[0], rtol=1e-4, atol=1e-5)


def test_grey_model_takes_2d_3d_rgb_files_and_pillow_images(keras):
    model = keras.Sequential([keras.layers.Conv2D(2, 3, name="c"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    model.build((None, 10, 12, 1))  # a Sequential model without an Input layer
    grey = np.random.default_rng(2).integers(0, 256, (10, 12), dtype=np.uint8)
    expected = actviz.activations(model, grey, ["c"])["c"]
    assert expected.shape == (1, 8, 10, 2)
    for given in (grey[:, :, None], grey[None, :, :, None], Image.fromarray(grey), _png(grey), np.stack([grey] * 3, -1)):
        np.testing.assert_allclose(actviz.activations(model, given, ["c"])["c"], expected, rtol=1e-5, atol=1e-6)
    larger = np.kron(grey, np.ones((3, 3), np.uint8))  # any size: resized to the model's input
    assert actviz.activations(model, larger, ["c"])["c"].shape == (1, 8, 10, 2)


def test_layers_by_suffix_nested_name_and_table_number(nested_model):
    x = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    full = actviz.activations(nested_model, x, ["vgg_base/block2_conv1"])["vgg_base/block2_conv1"]
    number = actviz.open_model(nested_model).probe.layer("block2_conv1").index
    for key in ("block2_conv1", number, str(number)):
        maps = actviz.activations(nested_model, x, [key])
        assert list(maps) == ["vgg_base/block2_conv1"]
        np.testing.assert_array_equal(maps[key], full)
    with pytest.raises(LayerNotFoundError, match="Did you mean 'vgg_base/block2_conv.' or 'vgg_base/block2_conv.'"):
        actviz.activations(nested_model, x, ["block2_conv"])  # two close names, both offered
    with pytest.raises(LayerNotFoundError, match="cannot be used here"):
        actviz.activations(nested_model, x, ["probs"])  # a Dense layer has no grid
    with pytest.raises(LayerNotFoundError, match="no layer number 999"):
        actviz.activations(nested_model, x, [999])
    with pytest.raises(LayerNotFoundError):
        actviz.activations(nested_model, x)["nope"]


def test_in_memory_model_equals_the_same_model_saved_and_reopened(flat_model, pixels, tmp_path):
    in_memory = actviz.activations(flat_model, pixels, "all")
    flat_model.save(tmp_path / "m.keras")
    flat_model.save(tmp_path / "m.h5")
    for source in (tmp_path / "m.keras", str(tmp_path / "m.h5"), (tmp_path / "m.keras").read_bytes()):
        reopened = actviz.activations(source, pixels, "all")
        assert list(reopened) == list(in_memory)
        for name in in_memory:
            np.testing.assert_allclose(reopened[name], in_memory[name], rtol=1e-6, atol=1e-7)


def test_a_loop_traces_a_model_once(flat_model, pixels, monkeypatch, tmp_path):
    import actviz.core.probe

    traced = []
    original = actviz.core.probe.trace
    monkeypatch.setattr(actviz.core.probe, "trace", lambda model: traced.append(model) or original(model))
    import keras

    fresh = keras.models.clone_model(flat_model)
    for index in range(4):
        actviz.activations(fresh, pixels[index], ["conv_1"])
        actviz.grad_cam(fresh, pixels[index])
    assert len(traced) == 1
    fresh.save(tmp_path / "again.keras")
    for index in range(3):
        actviz.activations(tmp_path / "again.keras", pixels[index])
    assert len(traced) == 2  # a file is opened once per content too


@pytest.mark.parametrize("given,error,message", [
    ([], ImageError, "No images"),
    (np.zeros((8, 8, 3), np.complex64), ImageError, "integers .* or floats"),
    (np.full((8, 8, 3), 300, np.int32), ImageError, "0..255"),
    (np.zeros((8, 8, 5), np.uint8), ImageError, "1, 3 or 4 colour channels"),
    (np.zeros((7, 8, 3), np.float32), ImageError, "height is 7, not 8"),
    (np.zeros((8, 8, 3, 1, 1), np.uint8), ImageError, "must be"),
    ({"not": "an image"}, ImageError, "takes file paths"),
    (b"not an image", ImageError, "not an image"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)], ImageError, "not both"),
])
def test_refusals_say_why(flat_model, given, error, message):
    with pytest.raises(error, match=message):
        actviz.activations(flat_model, given)


def test_any_size_model_refuses_a_mixed_size_batch(keras):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="c")(inputs)))
    a, b = np.zeros((40, 60, 3), np.uint8), np.zeros((60, 40, 3), np.uint8)
    assert actviz.activations(model, a, ["c"])["c"].shape == (1, 38, 58, 2)  # its own size (over 32 pixels a side)
    with pytest.raises(ImageError, match="different sizes"):
        actviz.activations(model, [a, b])


def test_results_show_themselves_and_save_like_export(flat_model, pixels, tmp_path):
    from actviz.cli import main

    maps = actviz.activations(flat_model, pixels[:2], class_names=["cat", "dog", "bird"])
    assert maps.grid("conv_1")._repr_png_().startswith(b"\x89PNG")
    page = maps._repr_html_()
    assert page.count("<tr>") == 1 + len(maps) and "data:image/png;base64," in page and "the model says" in page
    assert maps.answer(1)[0][0] in ("cat", "dog", "bird")
    assert maps.figure("conv_2", 1).axes[0].get_title().startswith("conv_2 (20 channels)")
    maps.save(tmp_path / "api")
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == ["image_0", "image_1"]
    Image.fromarray(pixels[0]).save(tmp_path / "one.png")
    flat_model.save(tmp_path / "m.keras")
    assert main(["export", "--model", str(tmp_path / "m.keras"), "--image", str(tmp_path / "one.png"), "--out", str(tmp_path / "cli")]) == 0
    actviz.activations(flat_model, tmp_path / "one.png").save(tmp_path / "one")
    for name in sorted(p.name for p in (tmp_path / "cli").iterdir()):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    cams = actviz.grad_cam(flat_model, pixels[:3], class_index=[0, 1, 2], class_names=["cat", "dog", "bird"])
    assert cams.class_index.tolist() == [0, 1, 2] and cams.label(2) == "bird"
    assert cams.overlay(1).shape == (8, 8, 3) and cams._repr_png_().startswith(b"\x89PNG")


def test_demo_model_by_default():
    maps = actviz.activations(None, demo_samples()[7], ["block1_conv1"])
    assert maps["block1_conv1"].shape == (1, 56, 56, 16) and maps.answer()[0][0] == "digit 7"


def _png(grey):
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()


# --- actviz.explain and the methods behind actviz.grad_cam ---------------------------------

CHEAP = {"smoothgrad": {"samples": 3}, "integrated-gradients": {"steps": 4}, "occlusion": {"patch": 4}}


def test_explain_any_method_equals_the_package_call(flat_model, pixels):
    from actviz.explainers.explain import explain as core
    from actviz.explainers.registry import METHOD_INFO, METHOD_NAMES, methods_for

    assert actviz.explain is actviz.api.explain and core is not actviz.explain  # the module stays importable by name
    probe = actviz.open_model(flat_model).probe
    inputs = pixels[:2].astype(np.float32) / 255.0
    assert methods_for(probe) == tuple(name for name in METHOD_NAMES if name != "rollout")  # a CNN has no attention to roll out
    for method in methods_for(probe):
        settings = CHEAP.get(method, {})
        maps = actviz.explain(flat_model, pixels[:2], method, class_index=[1, 2], class_names=["cat", "dog", "bird"], **settings)
        extra = {key: value for key, value in (("black", 0.0), ("seed", 0)) if key in METHOD_INFO[method].settings}
        want = core(probe, inputs, method=method, class_index=[1, 2], **settings, **extra)
        np.testing.assert_allclose(maps.raw, want.raw, rtol=1e-4, atol=1e-6, err_msg=method)
        np.testing.assert_allclose(maps.heatmap, want.heatmap, rtol=1e-4, atol=1e-5, err_msg=method)
        assert maps.method == method and maps.class_index.tolist() == [1, 2] and maps.label(1) == "bird"
        assert maps.layer == ("conv_2" if METHOD_INFO[method].family == "cam" else None)
        assert maps.overlay(1).shape == (8, 8, 3) and maps._repr_png_().startswith(b"\x89PNG")
        assert maps.caption(0).startswith(METHOD_INFO[method].title) and "for dog (probability" in maps.caption(0)
        assert maps.verdicts(0) == [] and maps.checks is None and repr(maps).startswith(f"ExplanationMaps({method}")
        np.testing.assert_array_equal(maps.pixels, pixels[:2])


def test_explain_black_follows_the_preprocessing(flat_model, pixels):
    from actviz.explainers.explain import explain as core

    probe = actviz.open_model(flat_model).probe
    inputs = pixels[:1].astype(np.float32) / 127.5 - 1.0  # "tf": black is -1, not 0
    maps = actviz.explain(flat_model, pixels[:1], "integrated-gradients", preprocess="tf", steps=4)
    want = core(probe, inputs, method="integrated-gradients", steps=4, black=np.full(3, -1.0, np.float32))
    np.testing.assert_allclose(maps.raw, want.raw, rtol=1e-4, atol=1e-6)
    zero = core(probe, inputs, method="integrated-gradients", steps=4, black=0.0)
    assert not np.allclose(maps.raw, zero.raw, atol=1e-6)  # a baseline of grey would give another answer


def test_grad_cam_takes_every_class_activation_map(flat_model, pixels):
    from actviz.explainers.explain import explain as core
    from actviz.explainers.registry import METHOD_INFO

    probe = actviz.open_model(flat_model).probe
    inputs = pixels[:2].astype(np.float32) / 255.0
    cams = [name for name, info in METHOD_INFO.items() if info.family == "cam"]
    assert len(cams) == 8
    for method in cams:
        maps = actviz.grad_cam(flat_model, pixels[:2], class_index=[0, 2], method=method)
        want = core(probe, inputs, method=method, class_index=[0, 2])
        assert maps.method == method and maps.layer == "conv_2" and maps.weights.shape == (2, 20)
        np.testing.assert_allclose(maps.heatmap, want.heatmap, rtol=1e-4, atol=1e-5, err_msg=method)
        np.testing.assert_allclose(maps.raw, np.maximum(want.raw, 0.0), rtol=1e-4, atol=1e-6, err_msg=method)
    for method in ("gradcam", "gradcam++"):  # the same values as the package's own Grad-CAM (its raw map through a ReLU)
        old = core(probe, inputs, class_index=[0, 2], method=method)
        new = actviz.grad_cam(flat_model, pixels[:2], class_index=[0, 2], method=method)
        for field, value in (("heatmap", old.heatmap), ("raw", np.maximum(old.raw, 0.0)), ("weights", old.weights), ("probability", old.probability)):
            np.testing.assert_allclose(getattr(new, field), value, rtol=1e-5, atol=1e-7)
        assert isinstance(new, actviz.ExplanationMaps) and new.explanation.method == method
    fast = actviz.grad_cam(flat_model, pixels[:1], method="scorecam", channels=4)
    assert fast.heatmap.shape == (1, 4, 4)
    with pytest.raises(ChoiceError, match=r"explains the input pixels.*actviz.explain\(model, images, method='saliency'\)"):
        actviz.grad_cam(flat_model, pixels[:1], method="saliency")
    with pytest.raises(ChoiceError, match=re.escape("Unknown explanation method 'gradcam+'")):
        actviz.grad_cam(flat_model, pixels[:1], method="gradcam+")
    with pytest.raises(ChoiceError, match="Grad-CAM has no setting 'steps'"):
        actviz.grad_cam(flat_model, pixels[:1], steps=3)


def test_explain_checks_progress_cancel_and_float_inputs(flat_model, pixels):
    from actviz.errors import Cancelled

    seen = []
    maps = actviz.explain(flat_model, pixels[:1], "occlusion", patch=4, checks=True, batch_size=2,
                          progress=lambda done, total: seen.append((done, total)))
    assert [v["check"] for v in maps.verdicts(0)] == ["deletion and insertion", "model randomisation"]
    assert all(v["sentence"].endswith(".") and v["passed"] in (True, False, None) for v in maps.verdicts(0))
    assert maps.checks.curves.deletion.shape == (1, 33) and len(maps.checks.randomisation.layers) == 3
    assert seen[:2] == [(2, 4), (4, 4)]  # the method's passes: four patches, two a pass
    checked = [done for done, total in seen[2:] if total == 1000]  # then the checks', from 0 to 1000
    assert len(checked) == len(seen) - 2 and checked == sorted(checked) and checked[-1] == 1000
    assert "; checked)" in repr(maps)
    integrated = actviz.explain(flat_model, pixels[:1], "integrated-gradients", steps=4, checks=True)
    assert [v["check"] for v in integrated.verdicts(0)][-1] == "completeness"
    with pytest.raises(Cancelled):
        actviz.explain(flat_model, pixels[:1], "smoothgrad", samples=4, batch_size=1, progress=lambda done, total: False)
    floats = actviz.explain(flat_model, pixels[:2].astype(np.float32) / 255.0, "saliency")
    assert floats.pixels is None and floats.heatmap.shape == (2, 8, 8) and floats._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no pixels"):
        floats.overlay(0)


def test_feature_patterns_takes_a_model_and_a_layer_by_number(keras):
    """The notebook call opens the model itself; a layer given by table number names the same layer."""
    inputs = keras.Input((32, 32, 1))
    conv = keras.layers.Conv2D(2, 3, name="c", kernel_initializer="ones")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(conv)))
    number = actviz.open_model(model).probe.layer("c").index
    by_name = actviz.feature_patterns(model, "c", [0, 1], steps=4, seed=3)
    by_number = actviz.feature_patterns(model, number, [0, 1], steps=4, seed=3)
    assert by_name.layer == by_number.layer == "c"
    assert by_name.images.shape == (2, 32, 32, 1)
    np.testing.assert_array_equal(by_name.images, by_number.images)
    # with all-ones kernels the channel's mean grows with the pixels: the picture ends brighter than it started
    assert (by_name.activation > by_name.start).all()
