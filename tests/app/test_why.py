"""The page "Why this answer" (views/why.py) through AppTest: methods side by side, their settings,
the checks, and the link from the filters that mattered to the one-channel page."""

from visit import read, texts


def _default_cam_layer():
    """The layer the page offers first for class activation maps: the layer table's choice for the demo model."""
    from actviz.safety.models import open_model

    return open_model().probe.table.default_cam_layer()[0].name


def test_why_view_links_the_filters_that_mattered_to_the_channel_view(app):
    at = app.run()
    at.switch_page("views/why.py").run()
    assert not at.exception and not at.error
    assert "These filters mattered most" in texts(at) and "% of the map" in texts(at)  # the number they are ranked by
    layer = at.selectbox(key="cam_layer").value
    assert layer == _default_cam_layer()  # the map the head reads, found automatically
    at.button(key="cam_show_1").click().run()
    assert "One channel up close" in texts(at) and at.session_state["channel_layer"] == layer  # the one-channel page opened on it
    assert not at.exception


def test_why_view_shows_methods_side_by_side_and_checks_them(app):
    at = app.run().switch_page("views/why.py")
    at.session_state["why_cam"] = ["gradcam", "layercam"]
    at.session_state["why_gradient"] = ["saliency"]
    at.session_state["why_perturbation"] = ["occlusion"]
    at.run()
    assert not at.exception and not at.error
    shown = read(" ".join(" ".join(i.captions) for i in at.image))
    assert f"Grad-CAM at layer {_default_cam_layer()}" in shown and "LayerCAM" in shown and "Saliency" in shown
    assert "Occlusion" not in shown  # slow: computed only when asked
    at.button(key="why_go").click().run()
    assert not at.exception and not at.error
    assert "Occlusion sensitivity (patches of 7 x 7 pixels every 7 pixels, filled with black pixels), for digit" in read(
        " ".join(" ".join(i.captions) for i in at.image))  # the library's default: an eighth of the 56-pixel side
    # the checks of Grad-CAM on the trained demo model: it depends on the learned weights
    at.selectbox(key="why_check_method").set_value("gradcam").run()
    at.button(key="why_checks_go").click().run()
    assert not at.exception and not at.error
    verdicts = [m.value for m in [*at.success, *at.warning, *at.info]]
    assert any("learned" in read(v) for v in verdicts), verdicts
    assert any("random down to" in read(" ".join(i.captions)) for i in at.image)


def test_why_view_settings_of_the_slower_methods_reach_the_computation(app, monkeypatch):
    """Settings chosen in the folded box are the ones the maps are computed with, and a map computed
    with other settings is a different map (not the one stored for the defaults)."""
    import importlib

    import numpy as np

    from actviz.demo import samples
    from actviz.inputs.images import open_image
    from actviz.safety.models import open_model
    from actviz.inputs.batch import to_batch

    module = importlib.import_module("actviz.explainers.explain")  # the module: the package's own `explain` is the notebook function
    computed, plain = {}, module.explain

    def spy(*args, method, **kwargs):  # the app imports explain on each run: it gets this one
        computed[method] = plain(*args, method=method, **kwargs)
        return computed[method]

    monkeypatch.setattr(module, "explain", spy)
    at = app.run().switch_page("views/why.py")
    at.session_state["why_cam"] = []
    at.session_state["why_gradient"] = ["integrated-gradients"]
    at.session_state["why_perturbation"] = ["occlusion"]
    at.run()
    assert not at.exception and not at.error
    assert at.slider(key="why_integrated-gradients_steps").value == 50 and at.slider(key="why_occlusion_patch").value == 7  # the library's defaults
    at.slider(key="why_integrated-gradients_steps").set_value(8)
    at.selectbox(key="why_integrated-gradients_baseline").set_value("blur")
    at.slider(key="why_occlusion_patch").set_value(14)
    at.slider(key="why_occlusion_stride").set_value(7)
    at.selectbox(key="why_occlusion_fill").set_value("mean").run()
    at.button(key="why_go").click().run()
    assert not at.exception and not at.error
    shown = read(" ".join(" ".join(i.captions) for i in at.image))
    assert "Integrated Gradients (8 steps from the image blurred beyond recognition), for digit" in shown
    assert "Occlusion sensitivity (patches of 14 x 14 pixels every 7 pixels, filled with the image's average colour)" in shown
    # the map the page computed is the library's map for these settings, called directly, and not the default one
    opened = open_model()
    batch = to_batch(open_image(samples()[0]), opened.probe, preprocess_as="rescale").inputs
    expected = plain(opened.probe, batch, method="occlusion", patch=14, stride=7, fill="mean")
    assert np.allclose(computed["occlusion"].raw, expected.raw, atol=1e-5)
    assert not np.allclose(plain(opened.probe, batch, method="occlusion").raw, expected.raw, atol=1e-3)
    assert computed["integrated-gradients"].settings["steps"] == 8


def test_why_view_settings_survive_a_layer_with_other_choices(app):
    """A Score-CAM setting chosen at one layer is not offered at a shallower one: switching layers
    keeps the page working and falls back to all the new layer's channels."""
    at = app.run().switch_page("views/why.py")
    at.session_state["why_cam"] = ["scorecam"]
    at.session_state["cam_layer"] = "block3_conv2"  # 64 channels: 16, 32 or all 64
    at.run()
    at.select_slider(key="why_scorecam_channels").set_value(64).run()
    at.selectbox(key="cam_layer").set_value("block2_conv1").run()  # 32 channels: 16 or all 32
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.select_slider(key="why_scorecam_channels").value == 32
    at.selectbox(key="cam_layer").set_value("block1_conv1").run()  # 16 channels: nothing to choose
    assert not at.exception and not at.error and not at.select_slider
    assert "All 16 channels of the layer are used" in texts(at)


def _checks_of_grad_cam(at):
    """The sentences of Grad-CAM's checks, run from the page, green and orange boxes alike."""
    at.selectbox(key="why_check_method").set_value("gradcam").run()
    at.button(key="why_checks_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return [read(box.value) for box in [*at.success, *at.warning]]


def test_why_view_never_calls_an_empty_map_trustworthy(app, keras, monkeypatch, tmp_path):
    """A model whose last convolution is 0 everywhere: Grad-CAM there is empty, and the checks say so in orange."""
    import numpy as np

    from visit import png_bytes

    inputs = keras.Input((6, 6, 3))
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="dark")
    dense = keras.layers.Dense(2, activation="softmax", name="probs")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    conv.set_weights([np.zeros((3, 3, 3, 2), np.float32), np.full(2, -1.0, np.float32)])
    dense.set_weights([np.ones((72, 2), np.float32), np.array([1.0, 0.0], np.float32)])
    model.save(tmp_path / "dark.keras")
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "one.png").write_bytes(png_bytes((6, 6, 3)))
    monkeypatch.setenv("ACTVIZ_MODEL", str(tmp_path / "dark.keras"))
    monkeypatch.setenv("ACTVIZ_SAMPLES", str(tmp_path / "samples"))
    at = app.run().switch_page("views/why.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cam_layer").value == "dark"
    assert [w.value for w in at.warning] == ["This map is empty: it has the same value everywhere, so it shows nothing in this "
                                             "image that speaks for the class. Try another layer, class or method."]
    assert "These filters mattered most" not in texts(at)  # an empty map ranks no channel above another
    sentences = _checks_of_grad_cam(at)
    assert not at.success, [b.value for b in at.success]  # nothing green
    sentences = sentences[1:]  # after the map's own warning, the checks'
    assert len(sentences) == 2 and all("This heat map is empty" in s and "cannot tell" in s for s in sentences), sentences
    assert not any("depends on what the model learned" in s for s in sentences)
    assert all(box.icon == ":material/help:" for box in at.warning)
    captions = [" ".join(i.captions) for i in at.image]
    assert any(c.startswith("the trained model: an empty map") for c in captions)
    assert not any("similarity" in c for c in captions)  # an empty map has no order to compare


def test_why_view_checks_of_a_class_the_model_gives_no_chance(app):
    """The demo's digit 0, explained as 'digit 1' (which the model gives almost no chance): the curves
    cannot fall to half, and the sentence says why, in orange; the citation is in the fold, not the sentence."""
    at = app.run().switch_page("views/why.py").run()
    at.selectbox(key="cam_class").set_value(1).run()
    assert not at.exception and not at.error
    sentences = _checks_of_grad_cam(at)
    curves = [s for s in sentences if "almost no chance" in s]
    assert len(curves) == 1 and "falls to half" not in curves[0] and "nothing for the map to explain" in curves[0]
    assert not any("almost no chance" in read(box.value) for box in at.success)
    assert not any("et al." in s or "rank correlation" in s for s in sentences)
    fold = [e for e in at.expander if e.label.startswith("More about these checks")]
    assert fold and "Adebayo et al. 2018" in read(" ".join(c.value for c in fold[0].caption))


def test_a_model_that_outputs_raw_scores_shows_scores_and_the_probability_they_make(app, monkeypatch, tmp_path):
    """No softmax at the model's end: the class choice shows the model's scores as scores, and the
    map's caption the probability they make (numpy's softmax of the model's own outputs)."""
    import keras
    import numpy as np
    from PIL import Image

    from actviz.draw.rounding import for_people, percent

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="scores")(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "scores.keras")
    (tmp_path / "samples").mkdir()
    pixels = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "samples" / "noise.png")
    monkeypatch.setenv("ACTVIZ_MODEL", str(tmp_path / "scores.keras"))
    monkeypatch.setenv("ACTVIZ_SAMPLES", str(tmp_path / "samples"))
    outputs = np.asarray(model(pixels[None].astype(np.float32) / 255), dtype=np.float64)[0]
    softmax = np.exp(outputs - outputs.max()) / np.exp(outputs - outputs.max()).sum()
    best = int(outputs.argmax())
    at = app.run()
    at.switch_page("views/why.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cam_class").options[best] == f"class {best} (score {for_people(outputs[best])})"
    assert f"(probability {percent(softmax[best])})" in read(" ".join(" ".join(i.captions) for i in at.image))
