"""The dashboard as a whole through streamlit.testing.v1.AppTest: the first screen, the operator's
settings, uploads, the server's state shared by visitors, the trust switch, and moving between
pages (links and old addresses). Each page has its own file: test_<page>.py."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import actviz.core.probe
from actviz.serve.server import reset_server, server
from visit import APP, png_bytes, read, texts


def test_first_screen_shows_prediction_and_first_conv_layer(app):
    at = app.run()
    assert not at.exception and not at.error
    text = texts(at)
    assert "The model says: **digit" in text
    assert "block1_conv1 · Conv2D · 56 x 56 x 16" in text
    assert "feature map" in text.lower()
    assert len(at.image) >= 3  # the input image and two grids


def test_the_answer_is_said_as_people_say_a_chance(app):
    """The header's chance is the demo model's own probability for digit 0 (plain Keras on the
    sample divided by 255), rounded for people: never "100.0%" for a chance that is not certain."""
    import keras
    import numpy as np
    from PIL import Image

    from actviz.demo import MODEL, SAMPLES
    from actviz.draw.rounding import percent

    model = keras.saving.load_model(MODEL, compile=False)
    pixels = np.asarray(Image.open(SAMPLES / "digit_0.png").convert("L"), np.float32)[None, :, :, None] / 255
    chance = float(np.asarray(model(pixels))[0].max())
    at = app.run()
    assert not at.exception
    assert f"The model says: **digit 0** ({percent(chance)} sure)" in texts(at)


def _operator_samples(folder, names):
    folder.mkdir()
    for index, name in enumerate(names):
        (folder / name).write_bytes(png_bytes((8 + index, 8, 3)))
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
    text = texts(at)
    assert "conv_1 · Conv2D · 8 x 8 x 6" in text
    assert any(f"The model says: **{word}**" in text for word in ("cat", "dog", "bird"))
    assert not at.sidebar.text_input  # the names are the operator's: nothing to type
    at.switch_page("views/why.py").run()
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
    assert "digit" not in texts(at)  # the demo's digits stay with the demo model
    at.sidebar.radio(key="image_source").set_value("Upload an image").run()
    at.sidebar.file_uploader(key="image_upload").set_value(("mine.png", png_bytes((8, 8, 3)), "image/png")).run()
    assert "The model says: **class " in texts(at)
    at.sidebar.text_input[0].set_value("cat, dog, bird").run()
    assert any(word in texts(at) for word in ("**cat**", "**dog**", "**bird**"))


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
        assert "conv_1 · Conv2D" in texts(at)
        monkeypatch.setenv("ACTVIZ_MODEL", f"http://127.0.0.1:{server.server_address[1]}/missing.keras")
        at = AppTest.from_file(APP, default_timeout=180).run()
        assert any("could not be downloaded" in e.value for e in at.error)
        assert "The model says: **digit" in texts(at)
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
    assert "The model says: **digit" in texts(at)


def test_uploaded_unsafe_model_is_refused_plainly(app, keras, tmp_path):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    keras.Model(inputs, keras.layers.Conv2D(1, 2)(x)).save(tmp_path / "lambda.keras")
    at = app.run()
    at.sidebar.radio(key="model_source").set_value("Upload a model file").run()
    at.sidebar.file_uploader(key="model_upload_0").set_value(("lambda.keras", (tmp_path / "lambda.keras").read_bytes(), "application/octet-stream")).run()
    assert not at.exception
    assert any("Lambda layer 'doubler'" in e.value for e in at.error)
    assert "The model says: **digit" in texts(at)  # the page goes on with the demo model


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
    assert "block2_conv1 · Conv2D" in texts(at)
    assert len(calls) == 1
    at.sidebar.selectbox(key="sample").set_value(at.sidebar.selectbox(key="sample").options[3]).run()
    assert len(calls) == 2  # a new image is a new forward pass


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
    at.sidebar.file_uploader(key="image_upload").set_value(("xray.png", png_bytes((40, 36, 3)), "image/png")).run()
    assert not at.exception and not at.error
    text = texts(at)
    assert "vgg16/block1_conv1 · Conv2D · 32 x 32 x 64" in text
    assert "Read as an older Keras 2 file" in text
    at.switch_page("views/why.py").run()
    assert not at.exception and not at.error
    # the default map is the one the head's last pooling shrinks (the Grad-CAM paper's layer for VGG16), said in words under the choice
    assert at.selectbox(key="cam_layer").value == "vgg16/block5_conv3"
    assert any("is the last layer before the final pooling: vgg16/block5_pool only shrinks its map to 1 x 1" in c.value.replace("\\", "")
               for c in at.caption)


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
    assert "The model says: **digit 7**" in texts(at)


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
    assert "digit 4" in texts(second) and "digit 0" in texts(first)


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


#: Each page by the title old addresses name it with (?view=...), and a sentence only that page shows.
PAGE_WORDS = {
    "Feature maps": "is what one layer of the network makes of the image",
    "One channel": "One channel up close",
    "Why this answer": "Where did the model look",
    "What filters look for": "What does a filter look for?",
    "Compare two images": "Two images through the same layer",
    "Across a data set": "Here the model runs once over a whole folder of images",
    "Layer statistics": "How active each layer is",
    "Model": "the way Keras's model.summary() lists them",
}


@pytest.mark.parametrize("title", list(PAGE_WORDS))
def test_an_old_address_opens_the_page_it_names(title):
    """Addresses from before the pages name a view (?view=Why+this+answer): they open that page."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["view"] = title
    at.run()
    assert not at.exception and not at.error
    assert [title for title, words in PAGE_WORDS.items() if words in texts(at)] == [title]
    assert "view" not in at.query_params


def test_an_old_address_keeps_the_rest_of_its_choices(app):
    app.query_params.update({"sample": "digit 7", "view": "One channel", "channel_layer": "block2_conv1", "cmap": "magma"})
    at = app.run()
    assert not at.exception and not at.error
    assert "The model says: **digit 7**" in texts(at)
    assert at.selectbox(key="channel_layer").value == "block2_conv1" and at.sidebar.selectbox(key="cmap").value == "magma"
    assert {"sample": "digit 7", "channel_layer": "block2_conv1", "cmap": "magma"}.items() <= at.query_params.items()


def test_the_sidebar_and_the_uploaded_image_stay_when_a_link_opens_another_page(app):
    """Streamlit forgets the values of the entry's widgets when a page opens another (st.switch_page):
    the sidebar's choices and the visitor's image must come along all the same."""
    from actviz.demo import samples as demo_samples

    at = app.run()
    at.sidebar.radio(key="image_source").set_value("Upload an image").run()
    at.sidebar.file_uploader(key="image_upload").set_value(("mine.png", demo_samples()[7].read_bytes(), "image/png")).run()
    at.sidebar.selectbox(key="preprocess").set_value("rescale")
    at.sidebar.radio(key="contrast").set_value("layer")
    at.sidebar.selectbox(key="cmap").set_value("magma").run()
    at.switch_page("views/why.py").run()
    assert "The model says: **digit 7**" in texts(at)
    at.button(key="cam_show_1").click().run()
    assert not at.exception and not at.error
    assert "One channel up close" in texts(at)  # the link opened the one-channel page ...
    assert "The model says: **digit 7**" in texts(at) and "mine.png" in at.image[0].proto.imgs[0].caption  # ... on the visitor's image
    assert at.sidebar.radio(key="image_source").value == "Upload an image"
    assert at.sidebar.selectbox(key="preprocess").value == "rescale" and at.sidebar.radio(key="contrast").value == "layer"
    assert at.sidebar.selectbox(key="cmap").value == "magma"  # the every-layer switch: see test_every_layer_switch_...


def test_a_finished_job_leaves_no_stop_button():
    """views.common.run_job: the Stop button and the progress bar are there while the job runs and go
    when it is done (before, the Stop button stayed beside "Make these pictures")."""
    def page():
        import streamlit as st

        from views.common import run_job

        def work(report):
            for step in range(3):
                report(step + 1, 3)
            return "counted"

        st.write(run_job("Counting", work, key="count"))

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception
    assert "counted" in [m.value for m in at.markdown]
    assert not [button for button in at.button if button.key == "stop_count"]


def test_the_operators_title_and_description(app, monkeypatch):
    """ACTVIZ_TITLE and ACTVIZ_DESCRIPTION (environment or Streamlit secrets) say what the page is about;
    the description is Markdown, and HTML in it is shown as text, never run."""
    monkeypatch.setenv("ACTVIZ_TITLE", "Pneumonia on chest X-rays")
    at = app
    at.secrets["ACTVIZ_DESCRIPTION"] = "A **VGG16** trained on chest X-rays: NORMAL or PNEUMONIA. <script>alert(1)</script>"
    at.run()
    assert not at.exception and not at.error
    assert read(at.title[0].value) == "Pneumonia on chest X-rays" and "What the network sees" not in texts(at)
    described = [m for m in at.markdown if "VGG16" in m.value]
    assert len(described) == 1 and described[0].value.startswith("A **VGG16** trained") and not described[0].proto.allow_html
    plain = AppTest.from_file(APP, default_timeout=180)
    monkeypatch.delenv("ACTVIZ_TITLE")
    plain.run()
    assert plain.title[0].value == "What the network sees" and "VGG16" not in texts(plain)


def _configured(monkeypatch, tmp_path, flat_model, choices=None):
    flat_model.save(tmp_path / "mine.keras")
    monkeypatch.setenv("ACTVIZ_MODEL", str(tmp_path / "mine.keras"))
    monkeypatch.setenv("ACTVIZ_SAMPLES", str(_operator_samples(tmp_path / "samples", ["one.png"])))
    if choices is not None:
        monkeypatch.setenv("ACTVIZ_MODEL_CHOICES", choices)


def test_the_operator_offers_the_configured_model_only(app, monkeypatch, tmp_path, flat_model):
    _configured(monkeypatch, tmp_path, flat_model, "model")
    at = app.run()
    assert not at.exception and not at.error
    assert not [r for r in at.sidebar.radio if r.key == "model_source"]  # one model: nothing to choose
    assert "conv_1 · Conv2D" in texts(at) and "digit" not in texts(at)
    assert not at.sidebar.get("file_uploader")


def test_the_operator_offers_the_model_and_the_demo(app, monkeypatch, tmp_path, flat_model):
    _configured(monkeypatch, tmp_path, flat_model, "model,demo")
    at = app.run()
    assert at.sidebar.radio(key="model_source").options == ["Configured model", "Demo: handwritten digits"]
    at.sidebar.radio(key="model_source").set_value("Demo: handwritten digits").run()
    assert not at.exception and not at.error and "The model says: **digit" in texts(at)


def test_an_upload_not_given_yet_shows_the_operators_model_when_the_demo_is_not_offered(app, monkeypatch, tmp_path, flat_model):
    _configured(monkeypatch, tmp_path, flat_model, "upload, model")
    at = app.run()
    assert at.sidebar.radio(key="model_source").options == ["Upload a model file", "Configured model"]
    assert at.sidebar.radio(key="model_source").value == "Upload a model file"  # the first offered comes first
    assert not at.exception and not at.error
    assert "Until a file is uploaded, the configured model is shown." in [c.value for c in at.sidebar.caption]
    assert "conv_1 · Conv2D" in texts(at) and "digit" not in texts(at)


def test_offering_a_configured_model_that_is_not_there_is_said_plainly(app, monkeypatch):
    monkeypatch.setenv("ACTVIZ_MODEL_CHOICES", "model,demo")
    at = app.run()
    assert not at.exception
    assert any(read(e.value).startswith("ACTVIZ_MODEL_CHOICES offers 'model', but no model is configured: set ACTVIZ_MODEL")
               for e in at.error)
    monkeypatch.setenv("ACTVIZ_MODEL_CHOICES", "everything")
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert any("ACTVIZ_MODEL_CHOICES is 'everything'; it takes one or more of model, demo, upload" in read(e.value) for e in at.error)


def test_layers_to_show_are_kept_in_network_order(app):
    """The help says "in network order": the choice reads that way whatever the order of the clicks."""
    at = app.run()
    at.sidebar.multiselect[0].set_value(["block3_conv2", "block1_conv1", "block1_pool"]).run()
    assert not at.exception and not at.error and not at.warning
    assert at.sidebar.multiselect[0].value == ["block1_conv1", "block1_pool", "block3_conv2"]
    # the demo has no layer with an image-like output besides its convolutions and poolings: the switch says so and is off
    switch = at.sidebar.toggle(key="all_layers")
    assert switch.disabled and "no other layers with an image-like output" in switch.help


def test_every_layer_switch_adds_layers_and_keeps_the_ones_chosen(app, keras, monkeypatch, tmp_path):
    """A model with batch normalisation and activation layers: the switch offers them; turning it off
    keeps the convolutions chosen and names the layer it can no longer show."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_1")(inputs)
    x = keras.layers.BatchNormalization(name="norm_1")(x)
    x = keras.layers.ReLU(name="relu_1")(x)
    x = keras.layers.MaxPooling2D(name="pool_1")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_2")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probs")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    keras.Model(inputs, outputs).save(tmp_path / "normed.keras")
    monkeypatch.setenv("ACTVIZ_MODEL", str(tmp_path / "normed.keras"))
    monkeypatch.setenv("ACTVIZ_SAMPLES", str(_operator_samples(tmp_path / "samples", ["one.png"])))
    at = app.run()
    switch = at.sidebar.toggle(key="all_layers")
    assert not switch.disabled and "norm_1, relu_1" in read(switch.help)
    assert "norm_1" not in at.sidebar.multiselect[0].options
    switch.set_value(True).run()
    assert {"norm_1", "relu_1"} <= set(at.sidebar.multiselect[0].options)
    assert at.sidebar.multiselect[0].value == ["conv_1", "conv_2"]  # the choice is kept when the switch changes
    at.sidebar.multiselect[0].set_value(["conv_1", "conv_2", "norm_1"]).run()
    assert at.sidebar.multiselect[0].value == ["conv_1", "norm_1", "conv_2"]
    at.switch_page("views/why.py").run()
    at.button(key="cam_show_1").click().run()  # a link to the one-channel page: the switch stays on
    assert not at.exception and not at.error and "One channel up close" in texts(at)
    assert at.sidebar.toggle(key="all_layers").value
    at.sidebar.toggle(key="all_layers").set_value(False).run()
    assert not at.exception and not at.error
    assert at.sidebar.multiselect[0].value == ["conv_1", "conv_2"]
    assert "Shown only with every layer: norm\\_1." in [c.value for c in at.sidebar.caption]
