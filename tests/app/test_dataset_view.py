"""The page "Across a data set" (views/dataset.py) through AppTest: the demo digits run and checked
against plain Keras, the links with the one-channel page, a summary shared by visitors, ZIP and
summary uploads held once by the server and checked before anything is drawn."""

from streamlit.testing.v1 import AppTest

from actviz.draw.rounding import for_people
from actviz.serve.server import reset_server, server
from visit import APP, read, texts


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
    at.switch_page("views/dataset.py").run()
    assert not at.exception and not at.error
    assert at.radio(key="dataset_source").value.startswith("Demo")
    assert not at.metric  # nothing computed before the visitor asks
    at.button(key="dataset_go").click().run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    accuracy, worst = _demo_answers()
    assert metrics["Images"] == "1,000"
    assert metrics["Answered right"] == f"{accuracy:.1%}"
    assert "excite" in texts(at) or "channel" in texts(at).lower()
    # channels: the top images of the chosen channel, each with its receptive-field crop
    layer = at.selectbox(key="dataset_layer").value
    channel = at.selectbox(key=f"dataset_channel_{layer}").value
    assert len(at.image) >= 2 * 9
    # the channel table in plain words (the technical names in the columns' help), its numbers rounded for people
    table = at.dataframe[0]
    assert all(f'"label": "{label}"' in table.proto.columns for label in ("tells classes apart", "responds on"))
    assert all(for_people(float(value.replace(",", ""))) == value for value in [*table.value["average"], *table.value["highest"]])
    at.button(key="dataset_to_channel").click().run()
    assert "One channel up close" in texts(at)  # the one-channel page opened
    assert at.selectbox(key="channel_layer").value == layer and at.selectbox(key=f"channel_{layer}").value == channel
    at.switch_page("views/one_channel.py")  # AppTest would ask for the data set page again: stay where the link went
    # ... and back from the one-channel view to the data set
    at.button(key="channel_to_dataset").click().run()
    assert "Here the model runs once over a whole folder of images" in texts(at) and at.radio(key="dataset_section").value == "Channels"
    assert at.selectbox(key="dataset_layer").value == layer and at.selectbox(key=f"dataset_channel_{layer}").value == channel
    at.switch_page("views/dataset.py")
    for section in ["Where the model looks", "Mistakes", "Dead channels", "Download"]:
        at.radio(key="dataset_section").set_value(section).run()
        assert not at.exception and not at.error, section
        if section == "Where the model looks":
            assert len(at.image) >= 10 and at.dataframe  # a mean heat map per digit and the answers per class
        if section == "Mistakes":
            from actviz.dataset import demo_digits

            assert len(at.image) == 1 + 12  # the input image, then the twelve most confident mistakes with their heat maps
            assert read(at.image[1].proto.imgs[0].caption).split(":")[0] in {demo_digits().paths[i] for i in worst}


def test_dataset_summary_is_shared_with_the_next_visitor(app):
    """A second visitor on the same model and data set sees the stored summary without running it again."""
    first = app.run()
    first.switch_page("views/dataset.py").run()
    if not first.metric:
        first.button(key="dataset_go").click().run()
    assert {m.label: m.value for m in first.metric}["Images"] == "1,000"
    second = AppTest.from_file(APP, default_timeout=180)
    second.switch_page("views/dataset.py").run()
    assert not second.exception and not second.error
    assert {m.label: m.value for m in second.metric}["Images"] == "1,000"
    assert not [b for b in second.button if b.key == "dataset_go"]


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
    at.switch_page("views/dataset.py").run()
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
    assert any("6 images in 2 classes" in read(c.value) for c in first.caption)
    second = _upload_zip(AppTest.from_file(APP, default_timeout=180), data, name="same.zip")
    assert not second.exception and not second.error
    assert server().nbytes()["sources"] == len(data)  # one copy for both visitors
    first.run()  # the first visitor's page still has its data set, from the server's store
    assert any("Using your upload: digits.zip" in read(c.value) for c in first.caption)


def test_an_upload_past_the_servers_memory_budget_is_refused_in_words(app, monkeypatch):
    monkeypatch.setenv("ACTVIZ_MEMORY_MB", "256")  # uploaded ZIPs get 12%: 31 MB
    reset_server()
    try:
        at = _upload_zip(app.run(), _zip_of_digits(padding=32 * 1024**2))
        assert not at.exception
        assert any("This ZIP would take 32 MB" in read(e.value) and "at most 31 MB for uploaded data set ZIPs" in read(e.value)
                   and "ACTVIZ_MEMORY_MB" in read(e.value) for e in at.error)
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
    at.switch_page("views/dataset.py").run()
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
    assert any("block9_conv9" in read(e.value) for e in lying.error), [e.value for e in lying.error]

    def many_classes(head):
        head["layout"]["classes"] = [f"class {i}" for i in range(12_000)]

    absurd = _open_summary(AppTest.from_file(APP, default_timeout=180), _summary_file(many_classes))
    assert not absurd.exception
    assert any("12,000 classes" in read(e.value) for e in absurd.error)


def test_the_servers_memory_comes_back_after_a_data_set_run(app, keras, tmp_path, monkeypatch):
    """A run on the server's data set with a model of large maps (256 x 256 x 32: 8 MB an image) says
    beforehand how long it will take, and leaves the server's memory within 150 MB of where it was:
    the pass runs in a process of its own (run in this one, the same pass left it 226 MB larger:
    TensorFlow keeps its batches' memory). The result is looked at on the dead channels, which run
    no model: the pictures of the other sections run the model in the server, as any picture does."""
    import numpy as np
    import psutil
    from PIL import Image

    inputs = keras.Input((256, 256, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="wide")(inputs)
    x = keras.layers.MaxPooling2D(4, name="pool")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="narrow")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(tmp_path / "wide.keras")
    rng = np.random.default_rng(0)
    for i in range(24):
        folder = tmp_path / "data" / ("left" if i % 2 else "right")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    (tmp_path / "samples").mkdir()
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(tmp_path / "samples" / "noise.png")
    monkeypatch.setenv("ACTVIZ_MODEL", str(tmp_path / "wide.keras"))
    monkeypatch.setenv("ACTVIZ_SAMPLES", str(tmp_path / "samples"))
    monkeypatch.setenv("ACTVIZ_DATASET", str(tmp_path / "data"))
    reset_server()
    try:
        at = app.run()
        at.switch_page("views/dataset.py").run()
        at.radio(key="dataset_source").set_value("The data set of this server").run()
        assert not at.exception and not at.error
        assert any("on this server" in read(i.value) for i in at.info)  # the time it will take, before it starts
        at.session_state["dataset_section"] = "Dead channels"
        before = psutil.Process().memory_info().rss
        at.button(key="dataset_go").click().run()
        assert not at.exception and not at.error
        assert {m.label: m.value for m in at.metric}["Images"] == "24"
        grown = (psutil.Process().memory_info().rss - before) / 1024**2
        assert grown < 150, f"the server holds {grown:.0f} MB more after the run"
    finally:
        reset_server()
