"""NMF, choosing the number of concepts, and projecting on fixed concepts, against plain numpy and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from actviz.concepts.factorise import choose_count, factorise, positive_part, project, relative_error
from actviz.errors import ChoiceError


def _low_rank(rng, rows=300, channels=24, rank=4, noise=0.002):
    """A non-negative matrix made of ``rank`` known non-negative parts, plus a little noise."""
    parts = np.abs(rng.normal(size=(rank, channels))) * (rng.random((rank, channels)) < 0.4)
    amounts = np.abs(rng.normal(size=(rows, rank)))
    return (amounts @ parts + noise * rng.random((rows, channels))).astype(np.float32), parts


def test_factors_reconstruct_the_activations_as_numpy_measures_it(rng):
    matrix, _ = _low_rank(rng)
    found = factorise(matrix)
    direct = np.linalg.norm(matrix.astype(np.float64) - found.coefficients.astype(np.float64) @ found.concepts) / np.linalg.norm(matrix)
    assert found.error == pytest.approx(direct, rel=1e-4) and found.error < 0.01
    assert found.count == 4  # the rank the matrix was made with: the fewest within 2 points of the best
    assert (found.concepts >= 0).all() and (found.coefficients >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(found.concepts, axis=1), 1.0, rtol=1e-5)
    assert set(found.errors) == set(range(2, 13)) and "4 concepts" in found.chosen


def test_the_concepts_are_the_parts_the_matrix_was_made_of(rng):
    matrix, parts = _low_rank(rng, noise=0.0)
    found = factorise(matrix, concepts=4)
    unit = parts / np.linalg.norm(parts, axis=1, keepdims=True)
    similarity = found.concepts @ unit.T  # each found concept should match one made part
    assert np.sort(similarity.max(axis=1)).min() > 0.99


def test_factorise_is_deterministic_and_leaves_its_input_alone(rng):
    matrix, _ = _low_rank(rng)
    before = matrix.copy()
    first, second = factorise(matrix, concepts=3), factorise(matrix, concepts=3)
    np.testing.assert_array_equal(first.concepts, second.concepts)
    np.testing.assert_array_equal(matrix, before)


def test_a_count_that_cannot_be_is_refused_in_words(rng):
    matrix, _ = _low_rank(rng, rows=20, channels=6)
    for bad in (0, 7, True):
        with pytest.raises(ChoiceError, match="between 1 and 6"):
            factorise(matrix, concepts=bad)
    with pytest.raises(ValueError, match="non-negative"):
        factorise(matrix - 1.0)


def test_choose_count_takes_the_fewest_within_the_margin():
    assert choose_count({2: 0.5, 4: 0.31, 6: 0.30, 8: 0.295}) == 4
    assert choose_count({2: 0.5, 4: 0.4, 6: 0.30}) == 6


def test_projection_is_scipy_nnls_row_by_row_and_ignores_the_other_rows(rng):
    concepts = np.abs(rng.normal(size=(5, 16)))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    rows = positive_part(rng.normal(size=(200, 16)))
    found = project(rows, concepts)
    expected = np.array([nnls(concepts.T.astype(np.float64), row.astype(np.float64))[0] for row in rows])
    np.testing.assert_allclose(found, expected, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([project(rows[:13], concepts), project(rows[13:], concepts)]), found)


def test_relative_error_of_an_exact_factorisation_is_zero(rng):
    u, w = np.abs(rng.normal(size=(10, 3))), np.abs(rng.normal(size=(3, 5)))
    assert relative_error(u @ w, u, w) == pytest.approx(0.0, abs=1e-12)
    assert relative_error(np.zeros((2, 2)), np.zeros((2, 1)), np.zeros((1, 2))) == 0.0


def test_the_docstring_examples_run():
    import doctest

    from actviz.concepts import crops, factorise as module

    for tested in (module, crops):
        result = doctest.testmod(tested)
        assert result.failed == 0 and result.attempted > 0, tested.__name__
