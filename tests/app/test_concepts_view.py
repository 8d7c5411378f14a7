"""The page "What the model sees" (views/concepts.py) through AppTest: the concepts of a demo digit
found through the button and stored for the next visitor, concept tests from two uploaded ZIPs
and from the server's folders, the findings first on a model that reads a planted marker, and bad
input said in words. Expectations come from plain numpy and Keras or from how the data was built."""

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from visit import APP, demo_keras_model, read, texts

from actviz.serve.server import reset_server, server

PAGE = "views/concepts.py"
SEVEN = 7


def _demo_labels():
    from actviz.dataset.sources import demo_arrays

    return demo_arrays()[1]


def _open(at, *, crops=64, klass=None):
    """The page, on class ``klass`` (default: the model's answer for the sidebar's image), with few crops."""
    at.switch_page(PAGE).run()
    if klass is not None:
        at.selectbox(key="concepts_class").set_value(klass).run()
    at.select_slider(key="concepts_crops").set_value(crops).run()
    return at


def _png(pixels):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _digits_zip(indices, folder="digits", *, by_class=False):
    """A ZIP of demo digits (PNG) in one folder, or in one subfolder per class."""
    from actviz.dataset.sources import demo_arrays

    images, labels = demo_arrays()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in indices:
            sub = f"{folder}/digit {int(labels[n])}" if by_class else folder
            archive.writestr(f"{sub}/{n:04d}.png", _png(images[n].reshape(28, 28)))
    return buffer.getvalue()


def _upload(at, slot, data, name):
    """Give ``data`` to the uploader of ``slot`` on the page (its key changes with each upload it takes)."""
    uploader = next(u for u in at.file_uploader if u.key.startswith(f"{slot}_"))
    uploader.set_value((name, data, "application/zip")).run()
    return at


def _concept_headings(at):
    return [m.value for m in at.markdown if m.value.startswith("#### Concept ")]


def test_the_page_renders_on_the_demo_and_counts_the_class_images(app):
    at = app.run().switch_page(PAGE).run()
    assert not at.exception and not at.error
    assert at.radio(key="concepts_source").value.startswith("Demo")
    klass = at.selectbox(key="concepts_class").value
    assert klass == 0  # the model's answer for the first sample, "digit 0"
    count = int((_demo_labels() == klass).sum())
    assert f"{count} images of 'digit 0' in the 1,000 demo digits" in texts(at)
    assert [b.key for b in at.button if b.key == "concepts_go"]
    assert not _concept_headings(at)  # nothing computed before the visitor asks
    assert "Give both the examples of the concept and the counterexamples" in read(" ".join(i.value for i in at.info))


def test_discovery_runs_through_the_button_and_the_next_visitor_sees_it_at_once(app):
    reset_server()
    at = _open(app.run(), klass=SEVEN)
    at.button(key="concepts_go").click().run()
    assert not at.exception and not at.error and not at.warning
    held = at.session_state["_concepts_found"]
    found = server().concepts.peek(held["key"])
    assert found is held["result"] and len(server().concepts) == 1  # stored once, for every visitor
    sevens = int((_demo_labels() == SEVEN).sum())
    # the map the last pooling before the global pooling shrinks, as plain Keras lists the demo model's layers
    layers = [layer.name for layer in demo_keras_model().layers]
    assert found.class_name == "digit 7" and found.count == sevens and found.layer == layers[layers.index("gap") - 2]
    page = texts(at)
    assert "What to check first" in page and "No finding" in read(" ".join(i.value for i in at.info))  # no finding on the digits
    assert f"from {sevens} images" in page
    headings = _concept_headings(at)
    assert headings == [f"#### Concept {n}" for n in range(1, len(found) + 1)]
    assert len(at.image) == 1 + 2 * len(found)  # the sidebar's image, then each concept's map and its pieces of images
    first = found[1]
    share = first.importance / found.mean_score  # the fall as a share of the class's mean score, for people
    assert f"removing it lowers the model's score for 'digit 7' by {share:.0%} on average" in page
    assert not [b for b in at.button if b.key == "concepts_go"]
    # a second visitor on the same class and settings sees the stored concepts without the button
    second = _open(AppTest.from_file(APP, default_timeout=180).run(), klass=SEVEN)
    assert not second.exception and not second.error
    assert not [b for b in second.button if b.key == "concepts_go"]
    assert _concept_headings(second) == headings
    # ... and other settings are another result, not this one
    other = _open(AppTest.from_file(APP, default_timeout=180).run(), klass=SEVEN, crops=128)
    assert [b for b in other.button if b.key == "concepts_go"] and not _concept_headings(other)


def test_a_concept_test_from_two_zip_uploads_says_its_verdict(app):
    reset_server()
    labels = _demo_labels()
    sevens, others = np.nonzero(labels == SEVEN)[0], np.nonzero(labels != SEVEN)[0]
    concept, random = _digits_zip(sevens[:30], "sevens"), _digits_zip(others[:30], "others")
    at = app.run().switch_page(PAGE).run()
    at.selectbox(key="concepts_class").set_value(SEVEN).run()
    _upload(at, "tcav_concept_zip", concept, "sevens.zip")
    _upload(at, "tcav_random_zip", random, "others.zip")
    assert not at.exception and not at.error
    assert at.session_state["_tcav_concept_zip_uploads"] == 1 and at.session_state["_tcav_random_zip_uploads"] == 1  # uploaders reset
    for slot in ("_tcav_concept", "_tcav_random"):
        assert set(at.session_state[slot]) == {"key", "label"} and at.session_state[slot]["key"] in server().sources  # a name and a hash
    assert server().nbytes()["sources"] == len(concept) + len(random)  # the bytes are held once, by the server
    assert "Using your upload: sevens.zip" in texts(at) and "Using your upload: others.zip" in texts(at)
    at.button(key="tcav_go").click().run()
    assert not at.exception and not at.error
    verdicts = [read(w.value) for w in at.warning]
    assert len(verdicts) == 1 and "is sensitive to 'sevens'" in verdicts[0] and "this is not chance" in verdicts[0]
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) == {"With the concept", "With random directions", "Could it be chance?"}
    assert metrics["Could it be chance?"].startswith("p ")
    count = int((labels == SEVEN).sum())
    assert f"the {count} images of 'digit 7'" in texts(at) and "learned from 30 examples and 30 counterexamples" in texts(at)
    # five examples are too few: said in a neutral colour, never as a finding
    _upload(at, "tcav_concept_zip", _digits_zip(sevens[30:35], "few sevens"), "few sevens.zip")
    at.button(key="tcav_go").click().run()
    assert not at.exception and not at.error and not at.warning
    assert any("Too few images to conclude (5 concept images" in read(i.value) for i in at.info)


def test_bad_zips_and_a_missing_class_are_said_in_words(app):
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    words = io.BytesIO()
    with zipfile.ZipFile(words, "w") as archive:
        archive.writestr("notes/readme.txt", "no pictures here")
    at = app.run().switch_page(PAGE).run()
    for data, name in [(empty.getvalue(), "empty.zip"), (words.getvalue(), "words.zip"), (b"not a zip", "broken.zip")]:
        _upload(at, "tcav_concept_zip", data, name)
        assert not at.exception and not at.error
        said = " ".join(read(w.value) for w in at.warning)
        assert "This ZIP cannot be used" in said, name
        assert ("There are no images" in said) if name != "broken.zip" else ("not a ZIP file" in said)
        assert "Test a concept you name" in texts(at)  # the page goes on
    # a data set without the chosen class: one sentence, and the page keeps working
    at.radio(key="concepts_source").set_value("Upload a ZIP of images").run()
    labels = _demo_labels()
    two = np.concatenate([np.nonzero(labels == 1)[0][:4], np.nonzero(labels == 2)[0][:4]])
    _upload(at, "concepts_zip", _digits_zip(two, by_class=True), "ones and twos.zip")
    at.selectbox(key="concepts_class").set_value(SEVEN).run()
    assert not at.exception and not at.error
    assert any("no images labelled 'digit 7'" in read(w.value) for w in at.warning)
    assert "Using your upload: ones and twos.zip" in texts(at)
    at.selectbox(key="concepts_class").set_value(1).run()  # a class it has: the button is back
    assert not at.warning and [b for b in at.button if b.key == "concepts_go"]
    assert "4 images of 'digit 1' in ones and twos.zip" in texts(at)


@pytest.fixture()
def planted_server(monkeypatch, tmp_path):
    """A server set up with the planted-marker model of the concept tests (only a bright 4 x 4 square in
    the top-left corner decides 'marked'), its images, and named concept folders with counterexamples."""
    import keras

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "concepts"))
    try:
        from planted import noise, planted, squares, trained_model, write
    finally:
        sys.path.pop(0)
    trained_model(keras).save(tmp_path / "planted.keras")
    images, labels = planted(80, seed=3)
    write(tmp_path / "images", images, labels)
    write(tmp_path / "samples", images[:2], None)
    write(tmp_path / "concepts" / "bright square", squares(40))
    write(tmp_path / "concepts" / "plain noise", noise(np.random.default_rng(11), 40))
    write(tmp_path / "random", noise(np.random.default_rng(9), 80))
    settings = {"ACTVIZ_MODEL": tmp_path / "planted.keras", "ACTVIZ_CLASSES": "marked, plain", "ACTVIZ_SAMPLES": tmp_path / "samples",
                "ACTVIZ_DATASET": tmp_path / "images", "ACTVIZ_CONCEPTS": tmp_path / "concepts", "ACTVIZ_RANDOM_IMAGES": tmp_path / "random"}
    for name, value in settings.items():
        monkeypatch.setenv(name, str(value))
    return tmp_path


def test_findings_come_first_and_concepts_are_tested_from_the_servers_folders(app, planted_server):
    at = app.run().switch_page(PAGE).run()
    assert not at.exception and not at.error
    assert at.radio(key="concepts_source").value == "The data set of this server"
    at.selectbox(key="concepts_class").set_value(0).run()  # "marked"
    at.select_slider(key="concepts_crops").set_value(256).run()
    at.button(key="concepts_go").click().run()
    assert not at.exception and not at.error
    findings = [read(w.value) for w in at.warning]
    assert len(findings) == 1 and "the top-left corner" in findings[0] and "concept 1" in findings[0]
    page = texts(at)
    assert page.index("What to check first") < page.index("The concepts of 'marked', most important first")
    assert any("outlined in red" in read(image.proto.imgs[0].caption) for image in at.image)
    # concept tests from the server's folders: the square the model reads, and noise like the counterexamples
    assert at.radio(key="tcav_concept_source").value == "A concept of this server"
    assert at.radio(key="tcav_random_source").value == "Other images of this server"
    assert at.selectbox(key="tcav_concept_name").options == ["bright square", "plain noise"]
    at.button(key="tcav_go").click().run()
    assert not at.exception and not at.error
    assert any("is sensitive to 'bright square'" in read(w.value) and "this is not chance" in read(w.value) for w in at.warning)
    at.selectbox(key="tcav_concept_name").set_value("plain noise").run()
    at.button(key="tcav_go").click().run()
    assert not at.exception and not at.error
    assert any("this is no evidence that the answer depends on 'plain noise'" in read(i.value) for i in at.info)
    assert not any("plain noise" in read(w.value) for w in at.warning)  # not shown as a finding
