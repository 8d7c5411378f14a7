"""TCAV on models whose concepts are known: the planted square (trained model) and a hand-set model
that answers by strong red and ignores green. The concept the answer is made of is near 1 and
significant; a concept the model cannot see is not; the words never claim what the test did not show."""

from __future__ import annotations

import doctest
import html

import numpy as np
import pytest
from planted import CLASSES, COLOUR_CLASSES, colour_model, colour_noise, colour_squares, colour_stripes, write_rgb
from scipy import stats

import actviz
from actviz.concepts import tcav as tcav_module  # the module: the function is actviz.tcav
from actviz.concepts.layer import head_chunk
from actviz.concepts.passes import Sensitivities
from actviz.concepts.tcav import fit_cav, p_value, verdict
from actviz.dataset import DatasetError, open_source
from actviz.errors import ChoiceError
from actviz.safety.models import probe_for


@pytest.fixture(scope="module")
def colours(keras, tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_rgb(root / "images", np.concatenate([colour_squares(40, seed=11), colour_noise(np.random.default_rng(12), 40)]), np.array([0] * 40 + [1] * 40))
    write_rgb(root / "red", colour_squares(40, seed=13))
    write_rgb(root / "green", colour_stripes(40, seed=14))
    write_rgb(root / "noise", colour_noise(np.random.default_rng(15), 80))
    return {"root": root, "model": colour_model(keras)}


def test_the_planted_square_is_near_one_and_significant(planted_data):
    root = planted_data["root"]
    result = actviz.tcav(planted_data["model"], root / "images", "marked", concept=root / "squares", random=root / "noise", class_names=CLASSES)
    assert result.layer == "conv1" and result.count == 40 and result.examples == 40 and len(result.runs) == 10
    assert result.score >= 0.9 and result.p_value < 0.05 and result.random_score < 0.8
    assert result.words.startswith(f"The model's answer 'marked' is sensitive to 'squares' in {result.score:.0%} of its images; this is not chance")
    assert np.mean([run.accuracy for run in result.runs]) > 0.75


def test_the_colour_the_answer_is_made_of_is_significant_and_one_it_ignores_is_not(colours):
    root = colours["root"]
    kwargs = dict(random=root / "noise", class_names=COLOUR_CLASSES)
    red = actviz.tcav(colours["model"], root / "images", "reddish", concept=root / "red", **kwargs)
    green = actviz.tcav(colours["model"], root / "images", "reddish", concept=root / "green", **kwargs)
    assert red.layer == "colour" and red.score >= 0.9 and red.p_value < 0.01 and "this is not chance" in red.words
    assert green.p_value > 0.2 and abs(green.score - green.random_score) < 0.15
    assert "no evidence that the answer depends on 'green'" in green.words and "not chance" not in green.words
    assert all(run.accuracy > 0.9 for run in green.runs)  # the layer sees green well: the model just does not use it


def test_directional_derivatives_are_keras_gradients_dotted_with_the_vectors(keras, colours, rng):
    import tensorflow as tf

    model = colours["model"]
    probe = probe_for(model)
    source = open_source(colours["root"] / "images")
    todo = np.arange(0, len(source), 7)
    vectors = rng.normal(size=(3, 16 * 16 * 2)).astype(np.float32)
    task = Sensitivities("rescale", (16, 16, 3), "colour", 4, head_chunk(probe, "colour", (16, 16, 3), backward=True), 1, vectors, False, False)
    loaded = [(source.pixels(int(i), (16, 16, 3)), None) for i in todo]
    found = task(probe, source, todo, loaded).finished()
    pixels = np.stack([p for p, _ in loaded]).astype(np.float32) / 255.0
    maps = tf.Variable(keras.Model(model.inputs, model.get_layer("colour").output)(pixels))
    with tf.GradientTape() as tape:
        x = model.get_layer("gap")(model.get_layer("strong")(maps))
        kernel, bias = model.get_layer("answer").get_weights()
        score = tf.reduce_sum(tf.matmul(x, kernel) + bias, axis=0)[1]  # class 1's logit
    gradient = tape.gradient(score, maps).numpy().reshape(len(todo), -1)
    np.testing.assert_array_equal(found.rows["key"], todo)
    np.testing.assert_allclose(found.rows["derivative"], gradient @ vectors.T, rtol=1e-4, atol=1e-6)


def test_a_cav_points_from_the_random_examples_to_the_concept(rng):
    direction = np.zeros(20)
    direction[3] = 1.0
    negative = np.abs(rng.normal(size=(60, 20)))
    positive = np.abs(rng.normal(size=(60, 20))) + 3.0 * direction
    vector, accuracy = fit_cav(positive, negative, seed=2)
    assert accuracy == 1.0 and np.argmax(vector) == 3 and vector @ direction > 0.6
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, rtol=1e-5)
    again, _ = fit_cav(positive, negative, seed=2)
    np.testing.assert_array_equal(vector, again)


def test_p_value_is_scipys_t_test_and_handles_scores_without_spread():
    a, b = [0.9, 1.0, 0.95, 1.0], [0.4, 0.7, 0.5, 0.2]
    assert p_value(a, b) == pytest.approx(stats.ttest_ind(a, b).pvalue)
    assert p_value([1.0] * 4, [1.0] * 4) == 1.0 and p_value([1.0] * 4, [0.0] * 4) == 0.0


def test_the_words_never_reassure_wrongly():
    base = dict(class_name="pneumonia", concept="text marker", layer="block5_conv2", alpha=0.05, runs=10,
                counts={"class": 200, "concept": 50, "random": 300})
    said = verdict(score=0.94, random_score=0.5, p=0.0012, accuracy=0.95, **base)
    assert said == ("The model's answer 'pneumonia' is sensitive to 'text marker' in 94% of its images; this is not chance, "
                    "p = 0.001 (random directions: 50% on average, 10 runs).")
    doubtful = verdict(score=0.7, random_score=0.5, p=0.2, accuracy=0.95, **base)
    assert "may be chance (p = 0.200" in doubtful and "no evidence" in doubtful and "not chance" not in doubtful
    against = verdict(score=0.05, random_score=0.5, p=0.0001, accuracy=0.95, **base)
    assert "only 5%" in against and "pushes its images away from 'pneumonia'" in against
    unclear = verdict(score=0.94, random_score=0.5, p=0.001, accuracy=0.55, **base)
    assert "hard to tell from the random ones" in unclear
    few = verdict(score=1.0, random_score=0.5, p=0.0001, accuracy=1.0, **{**base, "counts": {"class": 200, "concept": 4, "random": 300}})
    assert few.startswith("Too few images to conclude (4 concept images;") and "not chance" not in few and "neither number can be trusted" in few


def test_impossible_settings_are_refused_in_words(planted_data):
    root = planted_data["root"]
    with pytest.raises(ChoiceError, match="between 2 and 500 runs"):
        actviz.tcav(planted_data["model"], root / "images", 0, concept=root / "squares", random=root / "noise", runs=1)
    with pytest.raises(DatasetError, match="no folder or file"):
        actviz.tcav(planted_data["model"], root / "images", 0, concept=root / "nowhere", random=root / "noise")


def test_the_result_shows_itself_and_turns_into_json(colours):
    root = colours["root"]
    result = actviz.tcav(colours["model"], root / "images", "reddish", concept=root / "red", random=root / "noise", class_names=COLOUR_CLASSES, runs=3)
    assert result._repr_png_()[:4] == b"\x89PNG" and html.escape(result.words) in result._repr_html_()
    data = result.to_json()
    assert set(data) == {"class", "concept", "layer", "score", "p_value", "runs", "verdict", "words", "notes"}
    assert len(data["runs"]) == 3 and set(data["runs"][0]) == {"score", "random_score", "accuracy", "random_accuracy"}


def test_the_docstring_examples_run():
    result = doctest.testmod(tcav_module)
    assert result.failed == 0 and result.attempted > 0
