"""Batches sized to the memory a job may use: the memory of one pass worked out from the traced
shapes (against a computation by hand), the budget of the command line, work refused in words
before it starts, and what a pass costs in time (operations counted by hand)."""

import math

import pytest

from actviz.core.batches import WORKING_COPIES, available_memory, batch_size, job_memory, largest_map_bytes, pass_bytes
from actviz.core.passes import BACKWARD_COST, duration_words, flops, pass_seconds, seconds
from actviz.core.probe import Probe
from actviz.errors import BudgetError, ChoiceError


@pytest.fixture(scope="module")
def wide(keras):
    """20x24x3 input; conv 3x3 (8 channels, same), conv 3x3 (4, valid), GAP, Dense(3): sizes known by hand."""
    inputs = keras.Input((20, 24, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="first")(inputs)
    x = keras.layers.Conv2D(4, 3, name="second")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x))


def test_pass_bytes_counts_the_maps_kept_and_the_working_copies(wide):
    probe = Probe(wide)
    first, second = 4 * 20 * 24 * 8, 4 * 18 * 22 * 4  # float32 maps of one image
    assert largest_map_bytes(probe, (20, 24, 3)) == first
    outputs = 4 * 3  # the probabilities, always returned
    assert pass_bytes(probe, (20, 24, 3)) == outputs + WORKING_COPIES * first
    assert pass_bytes(probe, (20, 24, 3), keep=["second"]) == outputs + second + WORKING_COPIES * first
    every = 4 * (20 * 24 * 3) + first + second + 4 * 4 + 4 * 3  # the backward pass keeps every layer's output (input too)
    assert pass_bytes(probe, (20, 24, 3), backward=True) >= every + (WORKING_COPIES - 2) * first


def test_batch_size_follows_the_budget_and_refuses_in_words(wide):
    each = pass_bytes(Probe(wide), (20, 24, 3))
    assert batch_size(Probe(wide, max_bytes=2 * each), (20, 24, 3)) == 2
    assert batch_size(Probe(wide, max_bytes=100 * each), (20, 24, 3)) == 16  # MAX_BATCH: larger stacks are not faster on a CPU
    assert batch_size(Probe(wide, max_bytes=100 * each), (20, 24, 3), requested=40) == 40
    with pytest.raises(BudgetError) as caught:
        batch_size(Probe(wide, max_bytes=each - 1), (20, 24, 3))
    words = str(caught.value)
    assert "20 x 24 pixels" in words and "Nothing was run" in words and "this job may use" in words
    with pytest.raises(ChoiceError):
        batch_size(Probe(wide), (20, 24, 3), requested=0)


def test_job_memory_is_the_option_or_the_available_memory(monkeypatch):
    assert job_memory(300) == 300 * 1024**2
    with pytest.raises(ChoiceError, match="above 0"):
        job_memory(0)
    monkeypatch.delenv("ACTVIZ_MAX_FORWARD_MB", raising=False)
    free = available_memory()
    if free is None:
        pytest.skip("no /proc/meminfo here")
    assert 0 < job_memory() <= free
    monkeypatch.setenv("ACTVIZ_MAX_FORWARD_MB", "64")
    assert job_memory() <= 64 * 1024**2  # an operator's cap holds on the command line too


def test_flops_are_counted_by_hand_for_the_whole_model_and_its_parts(wide):
    probe = Probe(wide)
    first = 2 * 20 * 24 * (3 * 3 * 3 * 8)
    second = 2 * 18 * 22 * (3 * 3 * 8 * 4)
    dense = 2 * 4 * 3
    assert flops(probe, (20, 24, 3)) == first + second + dense
    assert flops(probe, (20, 24, 3), upto="first") == first
    assert flops(probe, (20, 24, 3), after="first") == second + dense


def test_seconds_are_passes_at_the_measured_speed(wide):
    probe = Probe(wide)
    one = pass_seconds(probe, (20, 24, 3))
    assert one > 0 and pass_seconds(probe, (20, 24, 3)) == one  # measured once
    assert pass_seconds(probe, (20, 24, 3), stacked=False) > 0
    assert math.isclose(seconds(probe, (20, 24, 3), forward=3, backward=2), one * (3 + 2 * BACKWARD_COST))
    assert [duration_words(s) for s in (0.2, 7, 42, 70, 250, 9000)] == [
        "under a second", "about 7 seconds", "about 40 seconds", "about a minute", "about 4 minutes", "about 2.5 hours",
    ]
