"""Partial results merge in any order to the same result; progress and Stop."""

from __future__ import annotations

import numpy as np
import pytest

from actviz.concepts.collect import Part, Stages
from actviz.errors import Cancelled


def _part(rng, keys):
    return Part.of(rows={"key": np.asarray(keys, np.int64), "value": rng.normal(size=(len(keys), 3))},
                   sums={"total": rng.normal(size=(2, 2))}, lows={"low": float(rng.normal())}, done=keys, skipped=[(int(keys[0]), f"f{keys[0]}", "bad")])


def test_parts_merged_in_any_order_give_the_same_result(rng):
    parts = [_part(rng, keys) for keys in ([5, 1], [9], [0, 7, 3])]
    forward = parts[0].merge(parts[1]).merge(parts[2]).finished()
    backward = parts[2].merge(parts[1].merge(parts[0])).finished()
    for name in ("key", "value"):
        np.testing.assert_array_equal(forward.rows[name], backward.rows[name])
    np.testing.assert_array_equal(forward.rows["key"], [0, 1, 3, 5, 7, 9])
    np.testing.assert_allclose(forward.sums["total"], backward.sums["total"])
    np.testing.assert_allclose(forward.sums["total"], sum(p.sums["total"] for p in parts))
    assert forward.lows == backward.lows == {"low": min(p.lows["low"] for p in parts)}
    assert forward.skipped == backward.skipped == ((0, "f0", "bad"), (5, "f5", "bad"), (9, "f9", "bad"))
    np.testing.assert_array_equal(forward.done, [0, 1, 3, 5, 7, 9])


def test_a_part_without_rows_merges_and_leaves_the_columns_empty(rng):
    empty = Part.of(done=[4])
    merged = empty.merge(_part(rng, [2])).finished()
    np.testing.assert_array_equal(merged.rows["key"], [2])
    assert Part.of(done=[1]).finished().column("value", (3,)).shape == (0, 3)


def test_stages_count_over_passes_and_a_false_answer_stops():
    seen = []
    stages = Stages(lambda done, total: seen.append((done, total)), 10)
    stages.report(4)
    stages.next_stage(10)
    stages.add(5)
    stages.report(2)
    assert seen == [(4, 10), (12, 15)]
    with pytest.raises(Cancelled, match="Stopped after 3 of 10"):
        Stages(lambda done, total: False, 10).report(3)
