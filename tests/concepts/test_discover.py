"""Concept discovery on a model trained in the test on images where only a planted square (top-left
corner, 4 x 4 pixels) decides the class, and on hand-set models: the square is the most important
concept, its map is where the square is, removing it costs far more than removing a random part,
the shortcut finder reports it, and nothing depends on batches or the order partial results merge."""

from __future__ import annotations

from functools import reduce

import numpy as np
import pytest
from PIL import Image
from planted import CLASSES, PATCH, colour_noise, colour_squares, planted, write_rgb
from scipy.optimize import nnls

import actviz
from actviz.concepts.collect import local_parts
from actviz.concepts.crops import CROP_SIDES
from actviz.concepts.importance import random_directions
from actviz.concepts.layer import forward_chunk, head_chunk
from actviz.concepts.passes import FALSE_ALARM, Crops, Readings
from actviz.dataset import open_source
from actviz.errors import Cancelled, ChoiceError
from actviz.safety.models import probe_for


def test_the_planted_square_is_the_most_important_concept_and_its_map_is_where_the_square_is(found):
    assert found.layer == "conv2" and found.count == 40 and found.class_name == "marked"
    first = found[1]
    y, x = np.unravel_index(first.grid_map.argmax(), first.grid_map.shape)
    assert y < PATCH // 2 and x < PATCH // 2  # the grid has a stride of 2: the square is cells 0 and 1
    y, x = np.unravel_index(first.mean_map.argmax(), first.mean_map.shape)
    assert y < PATCH and x < PATCH and first.mean_map.shape == (24, 24)
    assert first.relied == 1.0 and len(first.examples) == 9 and all(name.startswith("marked/") for name in first.examples)


def test_removing_the_top_concept_lowers_the_score_far_more_than_removing_a_random_one(found):
    first, rest = found[1], found.concepts[1:]
    assert first.importance > 3 * first.random_importance and first.importance > 0.3
    assert all(first.importance > 3 * abs(c.importance) for c in rest)
    mine = found.per_image["kind"] != FALSE_ALARM
    drop, random = found.per_image["drop"][mine], found.per_image["random"][mine]
    assert (drop[:, 0] > 2 * random[:, 0]).mean() > 0.9


def test_a_drop_is_what_plain_keras_and_scipy_give(keras, planted_data, found):
    """Independent computation for one image: conv2 by Keras, its positions in the concepts by
    scipy's NNLS, concept 1's part removed, the head (pooling, dense) by numpy."""
    model = planted_data["model"]
    row = int(np.nonzero(found.per_image["kind"] != FALSE_ALARM)[0][0])
    name = found.images[found.per_image["index"][row]]
    pixels = np.asarray(Image.open(planted_data["root"] / "images" / name), np.float32)[None, :, :, None] / 255.0
    activation = np.asarray(keras.Model(model.inputs, model.get_layer("conv2").output)(pixels))[0].astype(np.float64)
    bank = np.stack([c.direction for c in found.concepts]).astype(np.float64)
    amounts = np.array([nnls(bank.T, a)[0] for a in np.maximum(activation, 0).reshape(-1, bank.shape[1])]).reshape(*activation.shape[:2], -1)
    part = amounts[..., 0, None] * bank[0]
    kept = activation - np.minimum(part, np.maximum(activation, 0))
    kernel, bias = model.get_layer("answer").get_weights()

    def score(a):
        return (a.mean(axis=(0, 1)) @ kernel + bias)[0]

    assert found.per_image["score"][row] == pytest.approx(score(activation), rel=1e-4)
    assert found.per_image["drop"][row, 0] == pytest.approx(score(activation) - score(kept), rel=1e-3)


def test_the_shortcut_finder_reports_the_square_with_its_region_and_share(found):
    assert len(found.findings) == 1
    finding = found.findings[0]
    assert (finding.concept, finding.kind, finding.count) == (1, "place", 40) and finding.share >= 0.95
    assert np.abs(np.array(finding.region) - [0, 0, PATCH, PATCH]).max() <= 2 and finding.region_share <= 0.1
    assert "of 'marked' images the model relies on a small bright patch in the top-left corner" in finding.words
    assert finding.image in found.per_image["index"]


def test_parts_of_well_aligned_objects_are_not_findings():
    """The demo digits are centred like chest X-rays: the strokes of a 7 sit in about the same place
    in every 7, yet they are the digit, not a cue printed on it."""
    digits = actviz.discover_concepts(None, None, "digit 7", max_crops=256)
    assert digits.count == 98 and len(digits) >= 4 and digits.findings == ()
    assert digits[1].importance > 2 * digits[1].random_importance


def test_results_do_not_depend_on_the_batch_size(planted_data, found):
    other = actviz.discover_concepts(planted_data["model"], planted_data["root"] / "images", "marked", class_names=CLASSES, max_crops=320, batch_size=3)
    for key in ("index", "kind", "cell"):
        np.testing.assert_array_equal(other.per_image[key], found.per_image[key])
    for key in ("score", "drop", "random", "all", "strength"):
        np.testing.assert_allclose(other.per_image[key], found.per_image[key], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.stack([c.direction for c in other.concepts]), np.stack([c.direction for c in found.concepts]), rtol=1e-6, atol=1e-7)
    assert [c.examples for c in other.concepts] == [c.examples for c in found.concepts]
    assert [f.to_json() for f in other.findings] == [f.to_json() for f in found.findings]


def test_partial_results_of_real_passes_merge_in_any_order(planted_data, found):
    probe = probe_for(planted_data["model"])
    source = open_source(planted_data["root"] / "images")
    shape, todo = (24, 24, 1), np.arange(len(source), dtype=np.int64)[::3]
    chunk = forward_chunk(probe, "conv2", shape)
    bank = np.stack([c.direction for c in found.concepts])
    labels = np.asarray(source.labels, np.int64)
    tasks = [Crops("rescale", shape, "conv2", chunk, 8, CROP_SIDES, 0),
             Readings("rescale", shape, "conv2", chunk, head_chunk(probe, "conv2", shape), 0, bank, random_directions(len(bank), bank.shape[1]),
                      labels, True, False)]
    for task in tasks:
        parts = list(local_parts(task, probe, source, todo, batch_size=4, image_shape=shape))
        forward = reduce(lambda a, b: a.merge(b), parts).finished()
        shuffled = reduce(lambda a, b: a.merge(b), [parts[i] for i in np.random.default_rng(1).permutation(len(parts))]).finished()
        assert set(forward.rows) == set(shuffled.rows) and len(parts) > 3
        for name in forward.rows:
            np.testing.assert_array_equal(forward.rows[name], shuffled.rows[name])
        for name in forward.sums:
            np.testing.assert_allclose(forward.sums[name], shuffled.sums[name], rtol=1e-12)
        np.testing.assert_array_equal(forward.done, todo)


def test_without_labels_the_class_is_what_the_model_answers(planted_data):
    unlabelled = actviz.discover_concepts(planted_data["file"], planted_data["root"] / "unlabelled", "marked", class_names=CLASSES, max_crops=160)
    assert unlabelled.count == 40 and any("has no labels" in note for note in unlabelled.notes)
    assert [(f.concept, f.kind) for f in unlabelled.findings] == [(1, "place")]


def test_concept_maps_of_new_images_show_where_the_square_is(found):
    images, labels = planted(6, seed=77)
    before = images.copy()
    maps = found.maps(images)
    assert maps.shape == (6, 24, 24, len(found)) and maps.dtype == np.float32
    np.testing.assert_array_equal(images, before)
    for image in np.nonzero(labels == 0)[0]:
        y, x = np.unravel_index(maps[image, :, :, 0].argmax(), (24, 24))
        assert y < PATCH + 1 and x < PATCH + 1
    assert maps[labels == 1, :, :, 0].max() < 0.2 * maps[labels == 0, :, :, 0].max()


def test_the_result_shows_itself_and_turns_into_files(found):
    assert found._repr_png_()[:4] == b"\x89PNG" and "<table>" in found._repr_html_() and "concepts=" in repr(found)
    files = found.files()
    concepts = [f"concept_{n}_{what}" for n in range(1, len(found) + 1) for what in ("map.npy", "map.png", "crops.png")]
    assert sorted(files) == sorted(["concepts.json", "findings.json", "finding_1.png", *concepts])
    words = found.words()
    assert words[0].startswith(f"{len(found)} concepts of 'marked' at layer conv2, from 40 images") and found.findings[0].words in words
    with pytest.raises(ChoiceError, match="numbered 1 to"):
        found[0]


def test_a_false_answer_to_progress_stops_the_work(planted_data):
    seen = []

    def progress(done, total):
        seen.append((done, total))
        return done == 0

    with pytest.raises(Cancelled, match="Stopped after"):
        actviz.discover_concepts(planted_data["model"], planted_data["root"] / "images", 0, max_crops=64, batch_size=4, progress=progress)
    assert seen[0][0] == 0 and len(seen) == 2


def test_a_layer_with_negative_values_and_one_sigmoid_output(keras, tmp_path):
    """A hand-set colour model: a linear layer (red minus green, green minus red) before a ReLU, one
    sigmoid output scoring strong red. Its positive part is factorised, and the notes say so."""
    inputs = keras.Input((16, 16, 3))
    signed = keras.layers.Conv2D(2, 1, name="signed")(inputs)
    x = keras.layers.ReLU(name="relu")(signed)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="answer")(x))
    model.get_layer("signed").set_weights([np.array([[1, -1], [-1, 1], [0, 0]], np.float32)[None, None], np.zeros(2, np.float32)])
    model.get_layer("answer").set_weights([np.array([[40.0], [-10.0]], np.float32), np.array([-3.0], np.float32)])
    images = np.concatenate([colour_squares(20, seed=3), colour_noise(np.random.default_rng(4), 20)])
    write_rgb(tmp_path / "images", images, np.array([1] * 20 + [0] * 20), names=["other", "reddish"])
    result = actviz.discover_concepts(model, tmp_path / "images", "reddish", layer="signed", max_crops=80, class_names=["other", "reddish"])
    assert result.class_index == 1 and result.layer == "signed" and result.count == 20
    assert any("positive part" in note for note in result.notes)
    assert result[1].direction[0] > 0.9 and result[1].importance > 1.0  # red minus green: the channel the answer reads
    mine = result.per_image["kind"] != FALSE_ALARM
    np.testing.assert_array_less(0.0, result.per_image["score"][mine])  # class 1 of one sigmoid scores the logit itself
