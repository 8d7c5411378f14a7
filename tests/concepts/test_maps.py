"""Concept maps: peaks, regions in input pixels, against plain numpy."""

from __future__ import annotations

import numpy as np

from actviz.concepts.maps import peaks, region, strong_part, to_pixels
from actviz.draw.resample import resize_centred


def test_peaks_are_numpys_argmax_per_image_and_concept(rng):
    maps = rng.random((5, 3, 4, 2)).astype(np.float32)
    strength, cell = peaks(maps)
    for i in range(5):
        for k in range(2):
            flat = maps[i, :, :, k].ravel()
            assert cell[i, k] == flat.argmax() and strength[i, k] == flat.max()


def test_a_corner_block_of_a_stride_two_grid_is_its_four_pixels():
    grid = np.zeros((12, 12))
    grid[:2, :2] = 1.0  # cells 0 and 1 of a 12-cell grid over 24 pixels stand for pixels 0..3
    assert region(grid, (24, 24)) == ([0, 0, 4, 4], 16 / 576)
    np.testing.assert_array_equal(to_pixels(grid, (24, 24)), resize_centred(grid, (24, 24)))


def test_region_keeps_only_the_part_with_the_maximum_and_an_empty_map_has_none():
    grid = np.zeros((8, 8))
    grid[0, 0], grid[6, 6] = 1.0, 0.9  # two strong places: the weaker is left out
    mask = strong_part(grid)
    assert mask[0, 0] and not mask[6, 6]
    box, share = region(grid, (8, 8))
    assert box == [0, 0, 1, 1] and share == 1 / 64
    assert region(np.zeros((4, 4)), (16, 16)) == ([0, 0, 0, 0], 0.0)
