"""The page "Why this answer" (views/why.py) through AppTest: methods side by side, their settings,
the checks, and the link from the filters that mattered to the one-channel page."""

from visit import read, texts


def test_why_view_links_the_filters_that_mattered_to_the_channel_view(app):
    at = app.run()
    at.switch_page("views/why.py").run()
    assert not at.exception and not at.error
    assert "These filters mattered most" in texts(at)
    layer = at.selectbox(key="cam_layer").value
    assert layer == "block3_conv2"  # the last convolution layer, found automatically
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
    assert "Grad-CAM at layer block3_conv2" in shown and "LayerCAM" in shown and "Saliency" in shown
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
