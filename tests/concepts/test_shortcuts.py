"""The shortcut finder's rules on evidence made by hand, and its words."""

from __future__ import annotations

import doctest

import numpy as np

from actviz.concepts import shortcuts
from actviz.concepts.passes import FALSE_ALARM, MISSED, RIGHT
from actviz.concepts.shortcuts import Evidence, brightness, find_shortcuts

GRID = 12


def _evidence(rng, *, cells, drop, kind=None, strength=None, importance=(2.0, 0.1), random=(0.1, 0.05), spot=(0, 0)):
    """Two concepts over len(cells) images; concept 0's mean map a 2 x 2 blob at grid cell ``spot``."""
    count = len(cells)
    maps = np.zeros((2, GRID, GRID))
    maps[0, spot[0] : spot[0] + 2, spot[1] : spot[1] + 2] = 1.0
    maps[1] = rng.random((GRID, GRID))
    return Evidence(
        index=np.arange(count) * 10, kind=np.full(count, RIGHT) if kind is None else kind, drop=drop, random=np.full((count, 2), 0.05),
        strength=np.ones((count, 2)) if strength is None else strength, cell=np.stack([cells, rng.integers(0, GRID * GRID, count)], 1),
        importance=np.array(importance), random_importance=np.array(random), maps_class=maps, maps_mistakes=maps, image_hw=(24, 24), class_name="marked",
    )


def test_an_important_concept_peaking_in_one_cell_of_most_images_is_a_place_finding(rng):
    drop = np.tile([2.0, 0.1], (40, 1))
    found = find_shortcuts(_evidence(rng, cells=np.full(40, GRID + 1), drop=drop))
    assert [(f.concept, f.kind, f.share, f.region) for f in found] == [(1, "place", 1.0, (0, 0, 4, 4))]
    assert found[0].words.startswith("In 100% of 'marked' images the model relies on a small patch in the top-left corner (3% of the image; concept 1).")
    assert "sign of a shortcut" in found[0].words and found[0].image in range(0, 400, 10)


def test_peaks_spread_over_neighbouring_cells_are_a_part_of_the_object_not_a_finding(rng):
    # like a digit's stroke in well-aligned images: its peak wanders over a few cells
    cells = rng.choice([0, 1, GRID, GRID + 1, 2 * GRID + 1], size=40)
    assert find_shortcuts(_evidence(rng, cells=cells, drop=np.tile([2.0, 0.1], (40, 1)))) == []


def test_no_place_finding_when_unimportant_too_rare_or_too_large(rng):
    cells, drop = np.full(40, 0), np.tile([2.0, 0.1], (40, 1))
    assert find_shortcuts(_evidence(rng, cells=cells, drop=drop, importance=(0.2, 0.1), random=(0.15, 0.0))) == []  # barely above random
    rare = drop.copy()
    rare[:25, 0] = 0.0  # only 15 of 40 images rely on it
    assert find_shortcuts(_evidence(rng, cells=cells, drop=rare)) == []
    big = _evidence(rng, cells=cells, drop=drop)
    big.maps_class[0, :6, :6] = 1.0  # a quarter of the image: not a small patch
    assert find_shortcuts(big) == []


def test_a_concept_that_comes_with_the_mistakes_is_a_mistakes_finding(rng):
    kind = np.array([RIGHT] * 30 + [FALSE_ALARM] * 6 + [MISSED] * 4)
    strength = np.ones((40, 2))
    strength[:27, 1] = 0.05  # concept 2 is in 3 of the 30 right answers, and in every mistake
    drop = np.tile([2.0, 0.3], (40, 1))
    cells = rng.integers(0, GRID * GRID, 40)  # concept 1 sits nowhere in particular
    found = find_shortcuts(_evidence(rng, cells=cells, drop=drop, kind=kind, strength=strength))
    assert [(f.concept, f.kind, f.share, f.count) for f in found] == [(2, "mistakes", 1.0, 10)]
    words = found[0].words
    assert "100% of the model's 10 mistakes on 'marked' (6 other images answered 'marked', 4 'marked' images missed)" in words
    assert "but in 10% of its right answers" in words and "check whether it belongs to the disease" in words


def test_no_mistakes_finding_when_it_is_as_common_in_the_right_answers(rng):
    kind = np.array([RIGHT] * 30 + [FALSE_ALARM] * 10)
    found = find_shortcuts(_evidence(rng, cells=rng.integers(0, GRID * GRID, 40), drop=np.tile([2.0, 0.3], (40, 1)), kind=kind))
    assert found == []


def test_brightness_against_the_rest_of_the_image():
    image = np.full((24, 24, 1), 100, np.uint8)
    image[:4, :4] = 255
    assert brightness([0, 0, 4, 4], [image]) == "bright"
    image[:4, :4] = 0
    assert brightness([0, 0, 4, 4], [image]) == "dark"
    assert brightness([8, 8, 12, 12], [image]) == ""


def test_the_docstring_examples_run():
    result = doctest.testmod(shortcuts)
    assert result.failed == 0 and result.attempted > 0
