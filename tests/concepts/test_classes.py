"""The class: by number, by the model's name, by the data set's folder name; its images; its score."""

from __future__ import annotations

import numpy as np
import pytest
from planted import CLASSES

from actviz.concepts.classes import choose_class, class_score
from actviz.dataset import open_source
from actviz.errors import ClassNotFoundError
from actviz.safety.models import probe_for


def test_a_class_by_number_model_name_or_folder_name(planted_data):
    probe = probe_for(planted_data["model"])
    source = open_source(planted_data["root"] / "images")
    marked = np.nonzero(planted_data["labels"] == 0)[0]
    for choice, names in ((0, None), ("0", None), ("Marked", CLASSES), ("marked", None), ("plain", ["x", "y"])):
        chosen = choose_class(probe, source, choice, class_names=names)
        expected = 1 if choice == "plain" else 0
        assert chosen.index == expected
    chosen = choose_class(probe, source, "marked", class_names=CLASSES)
    assert chosen.name == "marked" and len(chosen.images) == len(marked)
    assert all(source.paths[i].startswith("marked/") for i in chosen.images)


def test_an_unknown_class_names_the_classes_there_are(planted_data):
    probe = probe_for(planted_data["model"])
    source = open_source(planted_data["root"] / "images")
    with pytest.raises(ClassNotFoundError, match=r"no class 'lungs'.*0 \(marked\), 1 \(plain\)"):
        choose_class(probe, source, "lungs", class_names=CLASSES)
    with pytest.raises(ClassNotFoundError, match="Class 5 does not exist"):
        choose_class(probe, source, 5)


def test_without_labels_the_class_has_no_listed_images(planted_data):
    chosen = choose_class(probe_for(planted_data["model"]), open_source(planted_data["root"] / "unlabelled"), "marked", class_names=CLASSES)
    assert chosen.images is None and chosen.labels is None and chosen.index == 0


def test_class_score_is_the_logit_and_one_sigmoid_is_two_classes():
    logits = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    np.testing.assert_array_equal(class_score(logits, 1), [-2.0, 3.0])
    single = np.array([[1.5], [-0.5]])
    np.testing.assert_array_equal(class_score(single, 1), [1.5, -0.5])
    np.testing.assert_array_equal(class_score(single, 0), [-1.5, 0.5])
