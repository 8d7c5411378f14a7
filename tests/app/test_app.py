"""The dashboard through streamlit.testing.v1.AppTest: logic, errors, and caching."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import actviz.core.probe
from actviz.serve.server import reset_server, server

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture()
def app(monkeypatch):
    monkeypatch.delenv("ACTVIZ_MODEL", raising=False)
    monkeypatch.delenv("ACTVIZ_SAMPLES", raising=False)
    monkeypatch.delenv("ACTVIZ_CLASSES", raising=False)
    return AppTest.from_file(APP, default_timeout=180)


def _texts(at):
    """The page's Markdown as a reader sees it."""
    return _read(" ".join(m.value for m in [*at.markdown, *at.caption, *at.header, *at.subheader, *at.title]))


def _read(markdown):
    """Markdown as a reader sees it: the app escapes punctuation in names with a backslash."""
    import re

    return re.sub(r"\\([^A-Za-z0-9\s])", r"\1", markdown)


def test_first_screen_shows_prediction_and_first_conv_layer(app):
    at = app.run()
    assert not at.exception and not at.error
    text = _texts(at)
    assert "The model says: **digit" in text
    assert "block1_conv1 · Conv2D · 56 x 56 x 16" in text
    assert "feature map" in text.lower()
    assert len(at.image) >= 3  # the input image and two grids


def _operator_samples(folder, names):
    folder.mkdir()
    for index, name in enumerate(names):
        (folder / name).write_bytes(_png_bytes((8 + index, 8, 3)))
    return folder


def test_configured_model_opens_with_the_operators_samples_and_names(app, monkeypatch, tmp_path, flat_model):
    """ACTVIZ_MODEL + ACTVIZ_SAMPLES + ACTVIZ_CLASSES: the operator's demo on the first screen, no digits."""
    path = tmp_path / "mine.keras"
    flat_model.save(path)
    monkeypatch.setenv("ACTVIZ_MODEL", str(path))
    monkeypatch.setenv("ACTVIZ_SAMPLES", str(_operator_samples(tmp_path / "samples", ["normal_01.png", "pneumonia_02.jpg"])))
    monkeypatch.setenv("ACTVIZ_CLASSES", "cat, dog, bird")
    at = app.run()
    assert not at.exception and not at.error
    assert at.sidebar.radio(key="model_source").value == "Configured model"
    assert at.sidebar.selectbox(key="sample").options == ["normal 01", "pneumonia 02"]
    text = _texts(at)
    assert "conv_1 · Conv2D · 8 x 8 x 6" in text
    assert any(f"The model says: **{word}**" in text for word in ("cat", "dog", "bird"))
    assert not at.sidebar.text_input  # the names are the operator's: nothing to type
    at.session_state["view"] = "Why this answer"
    at.run()
    assert not at.exception and not at.error
    assert all(any(word in option for word in ("cat", "dog", "bird")) for option in at.selectbox(key="cam_class").options)


def test_configured_model_without_samples_asks_for_an_image(app, monkeypatch, tmp_path, flat_model):
    path = tmp_path / "mine.keras"
    flat_model.save(path)
    monkeypatch.setenv("ACTVIZ_MODEL", str(path))
    monkeypatch.setenv("ACTVIZ_SAMPLES", str(tmp_path / "no such folder"))
    monkeypatch.delenv("ACTVIZ_CLASSES", raising=False)
    at = app.run()
    assert not at.exception and not at.error
    assert any("no folder of sample images" in w.value for w in at.warning)  # said, and the model still opens
    assert at.sidebar.radio(key="model_source").value == "Configured model"
    assert any("Upload an image" in i.value for i in at.info)
    assert "digit" not in _texts(at)  # the demo's digits stay with the demo model
    at.sidebar.radio(key="image_source").set_value("Upload an image").run()
    at.sidebar.file_uploader(key="image_upload").set_value(("mine.png", _png_bytes((8, 8, 3)), "image/png")).run()
    assert "The model says: **class " in _texts(at)
    at.sidebar.text_input[0].set_value("cat, dog, bird").run()
    assert any(word in _texts(at) for word in ("**cat**", "**dog**", "**bird**"))


def test_model_from_url(app, monkeypatch, tmp_path, flat_model):
    """ACTVIZ_MODEL as an http address, served on loopback."""
    import functools
    import http.server
    import threading

    flat_model.save(tmp_path / "served.keras")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("ACTVIZ_SAMPLES", str(_operator_samples(tmp_path / "samples", ["one.png"])))
        monkeypatch.setenv("ACTVIZ_MODEL", f"http://127.0.0.1:{server.server_address[1]}/served.keras")
        at = app.run()
        assert not at.exception and not at.error
        assert "conv_1 · Conv2D" in _texts(at)
        monkeypatch.setenv("ACTVIZ_MODEL", f"http://127.0.0.1:{server.server_address[1]}/missing.keras")
        at = AppTest.from_file(APP, default_timeout=180).run()
        assert any("could not be downloaded" in e.value for e in at.error)
        assert "The model says: **digit" in _texts(at)
    finally:
        server.shutdown()


def test_broken_configured_model_falls_back_to_demo(app, monkeypatch, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    monkeypatch.setenv("ACTVIZ_MODEL", str(broken))
    at = app.run()
    assert not at.exception
    assert any("cannot be shown" in e.value and "damaged" in e.value for e in at.error)
    assert "Showing the demo model instead." in [i.value for i in at.info]
    assert "The model says: **digit" in _texts(at)


def test_uploaded_unsafe_model_is_refused_plainly(app, keras, tmp_path):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    keras.Model(inputs, keras.layers.Conv2D(1, 2)(x)).save(tmp_path / "lambda.keras")
    at = app.run()
    at.sidebar.radio(key="model_source").set_value("Upload a model file").run()
    at.sidebar.file_uploader(key="model_upload_0").set_value(("lambda.keras", (tmp_path / "lambda.keras").read_bytes(), "application/octet-stream")).run()
    assert not at.exception
    assert any("Lambda layer 'doubler'" in e.value for e in at.error)
    assert "The model says: **digit" in _texts(at)  # the page goes on with the demo model


def test_non_image_upload_gives_error(app):
    at = app.run()
    at.sidebar.radio(key="image_source").set_value("Upload an image").run()
    at.sidebar.file_uploader(key="image_upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not at.exception
    assert any("not an image actviz can read" in e.value for e in at.error)


def test_interactions_do_not_rerun_the_forward_pass(app, monkeypatch):
    calls = []
    original = actviz.core.probe.Probe.run

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(actviz.core.probe.Probe, "run", counting)
    reset_server()
    at = app.run()
    assert len(calls) == 1
    at.sidebar.selectbox(key="cmap").set_value("magma").run()
    at.sidebar.slider(key="per_row").set_value(8).run()
    layers = at.sidebar.multiselect[0]
    layers.set_value(["block1_pool", "block2_conv1"]).run()
    at.sidebar.radio(key="contrast").set_value("layer").run()
    assert not at.exception and not at.error
    assert "block2_conv1 · Conv2D" in _texts(at)
    assert len(calls) == 1
    at.sidebar.selectbox(key="sample").set_value(at.sidebar.selectbox(key="sample").options[3]).run()
    assert len(calls) == 2  # a new image is a new forward pass


def test_other_views_render(app):
    at = app.run()
    for label in ["One channel", "Layer statistics", "Model"]:
        at.session_state["view"] = label
        at.run()
        assert not at.exception and not at.error, label
    at.session_state["view"] = "Layer statistics"
    at.run()
    assert "share of zero values grows" in _texts(at)


def test_why_filters_compare_views_and_channel_link(app):
    at = app.run()
    at.session_state["view"] = "Compare two images"
    at.run()
    assert not at.exception and not at.error
    assert "Channels that respond most differently" in _texts(at)
    assert sum("The model says: **digit" in m.value for m in at.markdown) == 3  # the header, then both images

    at.session_state["view"] = "What filters look for"
    at.run()
    images_before = len(at.image)
    at.slider(key="pattern_steps_robust").set_value(16).run()
    at.button(key="pattern_go").click().run()
    assert not at.exception and not at.error
    # channels 0-3 of block2_conv2: three pictures, and channel 3 never fires on anything (a dead filter): said in words
    assert at.selectbox(key="pattern_layer").value == "block2_conv2"
    assert len(at.image) == images_before + 3 and sum("reaches" in " ".join(i.captions) for i in at.image) == 3
    assert any("channel 3 of block2_conv2: no pattern" in _read(i.value) and "dead" in i.value for i in at.info)
    assert any("shifted" in c.value or "Read it as a texture" in c.value for c in at.caption)  # how they were made, how to read them

    at.session_state["view"] = "Why this answer"
    at.run()
    assert not at.exception and not at.error
    assert "These filters mattered most" in _texts(at)
    layer = at.selectbox(key="cam_layer").value
    assert layer == "block3_conv2"  # the last convolution layer, found automatically
    at.button(key="cam_show_1").click().run()
    assert at.session_state["view"] == "One channel" and at.session_state["channel_layer"] == layer
    assert not at.exception


def test_uploaded_keras2_nested_model_opens(app, keras2_files):
    at = app.run()
    at.sidebar.radio(key="model_source").set_value("Upload a model file").run()
    data = keras2_files["nested_vgg16"].read_bytes()
    at.sidebar.file_uploader(key="model_upload_0").set_value(("vgg16_custom.09-0.9650.h5", data, "application/octet-stream")).run()
    assert not at.exception and not at.error
    # no samples go with an uploaded model (the digits belong to the demo): the page asks for an image
    assert any("Upload an image" in i.value for i in at.info)
    assert "vgg16/block5_conv3" in [row for row in at.dataframe[0].value["layer"].str.strip()]
    at.sidebar.radio(key="image_source").set_value("Upload an image").run()
    at.sidebar.file_uploader(key="image_upload").set_value(("xray.png", _png_bytes((40, 36, 3)), "image/png")).run()
    assert not at.exception and not at.error
    text = _texts(at)
    assert "vgg16/block1_conv1 · Conv2D · 32 x 32 x 64" in text
    assert "Read as an older Keras 2 file" in text
    at.session_state["view"] = "Why this answer"
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cam_layer").value == "vgg16/block5_conv3"


def _png_bytes(shape):
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_camera_picture_is_used(app):
    from actviz.demo import samples as demo_samples

    at = app.run()
    at.sidebar.radio(key="image_source").set_value("Camera").run()
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(demo_samples()[7]).convert("RGB").save(buffer, format="JPEG", quality=95)  # cameras send JPEG
    at.sidebar.camera_input(key="camera").set_value(("shot.jpg", buffer.getvalue(), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert "The model says: **digit 7**" in _texts(at)


def test_trust_switch_only_when_allowed(app, monkeypatch):
    """Off in a deployment (no localhost Host header, no ACTVIZ_ALLOW_TRUST); on when a deployer turns it on."""
    monkeypatch.delenv("ACTVIZ_ALLOW_TRUST", raising=False)
    at = app.run()
    at.sidebar.radio(key="model_source").set_value("Upload a model file").run()
    assert not [c for c in at.sidebar.checkbox if c.key == "trust_model"]
    monkeypatch.setenv("ACTVIZ_ALLOW_TRUST", "1")
    at.run()
    assert [c for c in at.sidebar.checkbox if c.key == "trust_model"]


def test_two_visitors_on_different_images_never_evict_each_other(monkeypatch):
    """Two sessions of one server: each keeps its own feature maps; colour changes in either never rerun a pass."""
    calls = []
    original = actviz.core.probe.Probe.run

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(actviz.core.probe.Probe, "run", counting)
    monkeypatch.delenv("ACTVIZ_MODEL", raising=False)
    reset_server()  # a fresh server: no result held by an earlier test's sessions
    first, second = (AppTest.from_file(APP, default_timeout=180) for _ in range(2))
    first.run()
    second.run()
    second.sidebar.selectbox(key="sample").set_value("digit 4").run()
    assert len(calls) == 2
    for cmap in ("magma", "gray", "viridis", "inferno"):
        first.sidebar.selectbox(key="cmap").set_value(cmap).run()
        second.sidebar.selectbox(key="cmap").set_value(cmap).run()
    assert len(calls) == 2  # before: every change in either session re-ran the other's pass
    third = AppTest.from_file(APP, default_timeout=180).run()  # a third visitor on the first image shares its pass
    assert len(calls) == 2 and not third.exception
    assert "digit 4" in _texts(second) and "digit 0" in _texts(first)


def test_upload_name_is_shown_literally_and_only_to_its_uploader(app, flat_model, tmp_path):
    """A file name cannot become a link in the page, and the bytes are not kept once the model is open."""
    flat_model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    name = "[Session expired - sign in](https://evil.example).keras"
    at = app.run()
    at.sidebar.radio(key="model_source").set_value("Upload a model file").run()
    at.sidebar.file_uploader(key="model_upload_0").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception and not at.error
    raw = " ".join(m.value for m in [*at.markdown, *at.caption])
    assert "](https" not in raw and "evil\\.example" in raw
    assert at.session_state["_model_uploads"] == 1  # the uploader is reset: Streamlit lets the bytes go
    assert set(at.session_state["_uploaded_model"]) == {"label", "key"}  # the session keeps a name and a hash
    other = AppTest.from_file(APP, default_timeout=180).run()
    other.sidebar.radio(key="model_source").set_value("Upload a model file").run()
    other.sidebar.file_uploader(key="model_upload_0").set_value(("mine.keras", data, "application/octet-stream")).run()
    texts = " ".join(m.value for m in [*other.markdown, *other.caption])
    assert "Session expired" not in texts and "mine\\.keras" in texts


def test_streamlit_cannot_clear_the_keras_session_but_other_callers_can(app):
    """The app stops Streamlit's own clear_session() after each rerun (200 ms each); other calls go through."""
    import types

    import keras

    app.run()
    assert getattr(keras.backend.clear_session, "_actviz_wrapped", False)
    streamlit_like = types.ModuleType("streamlit.runtime.fake")
    exec("import keras\ndef clear():\n    keras.backend.clear_session()\n", streamlit_like.__dict__)
    first = keras.backend.get_uid("actviz_test")
    streamlit_like.clear()
    assert keras.backend.get_uid("actviz_test") == first + 1  # Streamlit's call was skipped: nothing reset
    keras.backend.clear_session()
    assert keras.backend.get_uid("actviz_test") == 1  # anyone else's call cleared the session


def _demo_answers():
    """The demo model's accuracy on the demo digits and the index of its most confident mistake,
    computed with plain Keras, Pillow and numpy."""
    import keras
    import numpy as np

    from actviz import demo
    from actviz.dataset.sources import demo_arrays

    from PIL import Image

    images, labels = demo_arrays()
    model = keras.saving.load_model(demo.MODEL, compile=False)
    size = model.input_shape[1:3]
    big = np.stack([np.asarray(Image.fromarray(np.asarray(i, np.uint8).reshape(28, 28)).resize(size[::-1], Image.Resampling.BILINEAR)) for i in images])
    scores = model.predict(big[..., None].astype("float32") / 255.0, verbose=0, batch_size=250)
    wrong = np.nonzero(scores.argmax(axis=1) != labels)[0]
    sure = scores[wrong].max(axis=1)
    return float((scores.argmax(axis=1) == labels).mean()), {int(i) for i in wrong[sure >= sure.max() - 1e-5]}


def test_dataset_view_runs_over_the_demo_digits_and_links_with_the_channel_view(app):
    at = app.run()
    at.session_state["view"] = "Across a data set"
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="dataset_source").value.startswith("Demo")
    assert not at.metric  # nothing computed before the visitor asks
    at.button(key="dataset_go").click().run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    accuracy, worst = _demo_answers()
    assert metrics["Images"] == "1,000"
    assert metrics["Answered right"] == f"{accuracy:.1%}"
    assert "excite" in _texts(at) or "channel" in _texts(at).lower()
    # channels: the top images of the chosen channel, each with its receptive-field crop
    layer = at.selectbox(key="dataset_layer").value
    channel = at.selectbox(key=f"dataset_channel_{layer}").value
    assert len(at.image) >= 2 * 9
    at.button(key="dataset_to_channel").click().run()
    assert at.session_state["view"] == "One channel"
    assert at.selectbox(key="channel_layer").value == layer and at.selectbox(key=f"channel_{layer}").value == channel
    # ... and back from the one-channel view to the data set
    at.button(key="channel_to_dataset").click().run()
    assert at.session_state["view"] == "Across a data set" and at.radio(key="dataset_section").value == "Channels"
    for section in ["Where the model looks", "Mistakes", "Dead channels", "Download"]:
        at.radio(key="dataset_section").set_value(section).run()
        assert not at.exception and not at.error, section
        if section == "Where the model looks":
            assert len(at.image) >= 10 and at.dataframe  # a mean heat map per digit and the answers per class
        if section == "Mistakes":
            from actviz.dataset import demo_digits

            assert len(at.image) == 1 + 12  # the input image, then the twelve most confident mistakes with their heat maps
            assert _read(at.image[1].proto.imgs[0].caption).split(":")[0] in {demo_digits().paths[i] for i in worst}


def test_dataset_summary_is_shared_with_the_next_visitor(app):
    """A second visitor on the same model and data set sees the stored summary without running it again."""
    first = app.run()
    first.session_state["view"] = "Across a data set"
    first.run()
    if not first.metric:
        first.button(key="dataset_go").click().run()
    assert {m.label: m.value for m in first.metric}["Images"] == "1,000"
    second = AppTest.from_file(APP, default_timeout=180)
    second.session_state["view"] = "Across a data set"
    second.run()
    assert not second.exception and not second.error
    assert {m.label: m.value for m in second.metric}["Images"] == "1,000"
    assert not [b for b in second.button if b.key == "dataset_go"]


def test_why_view_shows_methods_side_by_side_and_checks_them(app):
    at = app.run()
    at.session_state["view"] = "Why this answer"
    at.session_state["why_cam"] = ["gradcam", "layercam"]
    at.session_state["why_gradient"] = ["saliency"]
    at.session_state["why_perturbation"] = ["occlusion"]
    at.run()
    assert not at.exception and not at.error
    shown = _read(" ".join(" ".join(i.captions) for i in at.image))
    assert "Grad-CAM at layer block3_conv2" in shown and "LayerCAM" in shown and "Saliency" in shown
    assert "Occlusion" not in shown  # slow: computed only when asked
    at.button(key="why_go").click().run()
    assert not at.exception and not at.error
    assert "Occlusion sensitivity (patches of 7 x 7 pixels every 7 pixels, filled with black pixels), for digit" in _read(
        " ".join(" ".join(i.captions) for i in at.image))  # the library's default: an eighth of the 56-pixel side
    # the checks of Grad-CAM on the trained demo model: it depends on the learned weights
    at.selectbox(key="why_check_method").set_value("gradcam").run()
    at.button(key="why_checks_go").click().run()
    assert not at.exception and not at.error
    verdicts = [m.value for m in [*at.success, *at.warning, *at.info]]
    assert any("learned" in _read(v) for v in verdicts), verdicts
    assert any("random down to" in _read(" ".join(i.captions)) for i in at.image)


def test_why_view_settings_of_the_slower_methods_reach_the_computation(app, monkeypatch):
    """Settings chosen in the folded box are the ones the maps are computed with, and a map computed
    with other settings is a different map (not the one stored for the defaults)."""
    import importlib

    import numpy as np

    from actviz.demo import samples
    from actviz.inputs.images import open_image
    from actviz.safety.models import open_model
    from actviz.inputs.preprocessing import prepare

    module = importlib.import_module("actviz.explainers.explain")  # the module: the package's own `explain` is the notebook function
    computed, plain = {}, module.explain

    def spy(*args, method, **kwargs):  # the app imports explain on each run: it gets this one
        computed[method] = plain(*args, method=method, **kwargs)
        return computed[method]

    monkeypatch.setattr(module, "explain", spy)
    at = app.run()
    at.session_state["view"] = "Why this answer"
    at.session_state["why_cam"] = []
    at.session_state["why_gradient"] = ["integrated-gradients"]
    at.session_state["why_perturbation"] = ["occlusion"]
    at.run()
    assert not at.exception and not at.error
    assert at.slider(key="why_ig_steps").value == 50 and at.slider(key="why_occlusion_patch").value == 7  # the library's defaults
    at.slider(key="why_ig_steps").set_value(8)
    at.selectbox(key="why_ig_baseline").set_value("blur")
    at.slider(key="why_occlusion_patch").set_value(14)
    at.radio(key="why_occlusion_overlap").set_value("overlapping by half")
    at.selectbox(key="why_occlusion_fill").set_value("mean").run()
    at.button(key="why_go").click().run()
    assert not at.exception and not at.error
    shown = _read(" ".join(" ".join(i.captions) for i in at.image))
    assert "Integrated Gradients (8 steps from the image blurred beyond recognition), for digit" in shown
    assert "Occlusion sensitivity (patches of 14 x 14 pixels every 7 pixels, filled with the image's average colour)" in shown
    # the map the page computed is the library's map for these settings, called directly, and not the default one
    opened = open_model()
    _, batch = prepare(opened.probe, open_image(samples()[0]), "rescale")
    expected = plain(opened.probe, batch, method="occlusion", patch=14, stride=7, fill="mean")
    assert np.allclose(computed["occlusion"].raw, expected.raw, atol=1e-5)
    assert not np.allclose(plain(opened.probe, batch, method="occlusion").raw, expected.raw, atol=1e-3)
    assert computed["integrated-gradients"].settings["steps"] == 8


def test_why_view_settings_survive_a_layer_with_other_choices(app):
    """A Score-CAM setting chosen at one layer is not offered at a shallower one: switching layers
    keeps the page working and falls back to all the new layer's channels."""
    at = app.run()
    at.session_state["view"] = "Why this answer"
    at.session_state["why_cam"] = ["scorecam"]
    at.session_state["cam_layer"] = "block3_conv2"  # 64 channels: 16, 32 or all 64
    at.run()
    at.select_slider(key="why_scorecam_channels").set_value(64).run()
    at.selectbox(key="cam_layer").set_value("block2_conv1").run()  # 32 channels: 16 or all 32
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.select_slider(key="why_scorecam_channels").value == 32
    at.selectbox(key="cam_layer").set_value("block1_conv1").run()  # 16 channels: nothing to choose
    assert not at.exception and not at.error and not at.select_slider
    assert "All 16 channels of the layer are used" in _texts(at)


def test_a_clear_cache_message_changes_nothing_a_visitor_can_measure(app, monkeypatch):
    """Any client can send Streamlit's clear-cache message; the server's stores and job queue are not
    in Streamlit's caches, so it empties nothing, makes no second queue and reruns no forward pass."""
    calls = []
    original = actviz.core.probe.Probe.run

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(actviz.core.probe.Probe, "run", counting)
    reset_server()
    at = app.run()
    state = server()
    queue, models, held = state.queue, len(state.models), state.nbytes()
    assert models == 1 and held["results"] > 0 and held["pictures"] > 0
    st.cache_data.clear()  # what streamlit.runtime.app_session does on a client's "clear_cache" message
    st.cache_resource.clear()
    other = AppTest.from_file(APP, default_timeout=180).run()  # another visitor, on the same image
    at.run()
    assert not at.exception and not other.exception
    assert server() is state and server().queue is queue
    assert len(state.models) == models and state.nbytes() == held
    assert len(calls) == 1  # nothing was computed again


def _zip_of_digits(count=6, *, padding=0):
    """A ZIP of a folder with two class folders of digit images (and ``padding`` bytes of noise)."""
    import io
    import os
    import zipfile

    from actviz.demo import samples as demo_samples

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for n, path in enumerate(demo_samples()[:count]):
            archive.writestr(f"digits/{'low' if n < count // 2 else 'high'}/{path.name}", path.read_bytes())
        if padding:
            archive.writestr("digits/noise.bin", os.urandom(padding))
    return buffer.getvalue()


def _upload_zip(at, data, name="digits.zip"):
    at.session_state["view"] = "Across a data set"
    at.run()
    at.radio(key="dataset_source").set_value("Upload a ZIP of images").run()
    count = at.session_state["_zip_uploads"]
    at.file_uploader(key=f"dataset_zip_{count}").set_value((name, data, "application/zip")).run()
    return at


def test_a_zip_upload_is_held_once_by_the_server_not_by_each_visitor(app):
    reset_server()
    data = _zip_of_digits()
    first = _upload_zip(app.run(), data)
    assert not first.exception and not first.error
    assert first.session_state["_zip_uploads"] == 1  # the uploader was reset: Streamlit lets its copy go
    first.run()
    assert first.file_uploader(key="dataset_zip_1").value is None and not first.error
    assert set(first.session_state["_dataset_zip"]) == {"key", "label"}  # the session keeps a name and a hash
    assert first.session_state["_dataset_zip"]["key"] in server().sources and server().nbytes()["sources"] == len(data)
    assert any("6 images in 2 classes" in _read(c.value) for c in first.caption)
    second = _upload_zip(AppTest.from_file(APP, default_timeout=180), data, name="same.zip")
    assert not second.exception and not second.error
    assert server().nbytes()["sources"] == len(data)  # one copy for both visitors
    first.run()  # the first visitor's page still has its data set, from the server's store
    assert any("Using your upload: digits.zip" in _read(c.value) for c in first.caption)


def test_an_upload_past_the_servers_memory_budget_is_refused_in_words(app, monkeypatch):
    monkeypatch.setenv("ACTVIZ_MEMORY_MB", "256")  # uploaded ZIPs get 12%: 31 MB
    reset_server()
    try:
        at = _upload_zip(app.run(), _zip_of_digits(padding=32 * 1024**2))
        assert not at.exception
        assert any("This ZIP would take 32 MB" in _read(e.value) and "at most 31 MB for uploaded data set ZIPs" in _read(e.value)
                   and "ACTVIZ_MEMORY_MB" in _read(e.value) for e in at.error)
        assert server().nbytes()["sources"] == 0 and "_dataset_zip" not in at.session_state
    finally:
        monkeypatch.delenv("ACTVIZ_MEMORY_MB")
        reset_server()


def _summary_file(change=None):
    """A saved summary of the demo model over 20 demo digits, its description changed by ``change``."""
    import io
    import json

    import numpy as np

    from actviz import open_model
    from actviz.dataset import summarize

    data = summarize(open_model(), None, indices=np.arange(20), layers=["block2_conv1"], top_k=3, batch_size=20).to_bytes()
    if change is None:
        return data
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        parts = {key: stored[key] for key in stored.files}
    head = json.loads(parts["head"].tobytes())
    change(head)
    parts["head"] = np.frombuffer(json.dumps(head).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **parts)
    return buffer.getvalue()


def _open_summary(at, data, name="summary.npz"):
    at.session_state["view"] = "Across a data set"
    at.run()
    at.radio(key="dataset_source").set_value("Open a saved summary").run()
    count = at.session_state["_summary_uploads"]
    at.file_uploader(key=f"dataset_summary_{count}").set_value((name, data, "application/octet-stream")).run()
    return at


def test_a_saved_summary_is_checked_before_the_server_draws_anything(app):
    """A summary may claim the demo model's public digest: one whose layout does not fit the model is
    refused in words; one that declares absurd sizes is refused before it is read; a real one opens."""
    reset_server()
    good = _open_summary(app.run(), _summary_file())
    assert not good.exception and not good.error
    assert {m.label: m.value for m in good.metric}["Images"] == "20"

    def other_layer(head):
        head["layout"]["layers"][0][0] = "block9_conv9"  # a layer the demo model does not have

    lying = _open_summary(AppTest.from_file(APP, default_timeout=180), _summary_file(other_layer))
    assert not lying.exception and not lying.metric
    assert any("block9_conv9" in _read(e.value) for e in lying.error), [e.value for e in lying.error]

    def many_classes(head):
        head["layout"]["classes"] = [f"class {i}" for i in range(12_000)]

    absurd = _open_summary(AppTest.from_file(APP, default_timeout=180), _summary_file(many_classes))
    assert not absurd.exception
    assert any("12,000 classes" in _read(e.value) for e in absurd.error)
