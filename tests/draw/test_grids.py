import warnings

import numpy as np
import pytest

from actviz.draw.grids import FeatureGrid, channel_levels, feature_grid, palette, png_bytes, tile
from actviz.draw.resample import shrink


def notebook_levels(activation):
    """The notebook's per-channel loop, with its divide-by-zero fixed (constant -> 0), in float64."""
    out = np.zeros(activation.shape, np.uint8)
    for c in range(activation.shape[-1]):
        channel = activation[:, :, c].astype(np.float64)
        if channel.max() == channel.min():
            continue
        channel = (channel - channel.mean()) / channel.std() * 64 + 128
        out[:, :, c] = np.clip(channel, 0, 255).astype(np.uint8)
    return out


def test_channel_levels_match_notebook_formula(rng):
    activation = rng.gamma(1.0, 2.0, (30, 20, 7)).astype(np.float32)
    activation[:, :, 3] = 0.0
    levels = channel_levels(activation)
    reference = notebook_levels(activation)
    differ = levels.astype(int) - reference
    assert np.abs(differ).max() <= 1  # float32 arithmetic vs float64: rounding at integer boundaries only
    assert np.count_nonzero(differ) <= activation.size * 1e-3


def test_constant_channel_renders_flat_without_warnings():
    activation = np.zeros((5, 5, 3), np.float32)
    activation[:, :, 1] = 7.0
    activation[2, 2, 2] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        levels = channel_levels(activation)
    assert np.all(levels[:, :, :2] == 0)
    assert levels[2, 2, 2] > 128 and levels[0, 0, 2] < 128


def test_layer_contrast_shares_one_scale():
    activation = np.zeros((2, 2, 2), np.float32)
    activation[:, :, 1] = [[0, 10], [0, 10]]
    levels = channel_levels(activation, contrast="layer")
    assert levels[0, 0, 0] == levels[0, 0, 1]  # the same value gets the same level in both channels
    with pytest.raises(ValueError):
        channel_levels(activation, contrast="weird")


def test_channel_levels_do_not_modify_input(rng):
    activation = rng.random((4, 4, 2), dtype=np.float32)
    before = activation.copy()
    channel_levels(activation)
    np.testing.assert_array_equal(activation, before)


def test_tile_places_every_channel_with_partial_last_row():
    levels = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)  # 5 channels, not a multiple of 2
    grid = tile(levels, per_row=2, gap=1, fill=255)
    assert grid.shape == (3 * 2 + 2, 2 * 3 + 1)
    for c in range(5):
        row, col = divmod(c, 2)
        np.testing.assert_array_equal(grid[row * 3: row * 3 + 2, col * 4: col * 4 + 3], levels[:, :, c])
    assert np.all(grid[2, :] == 255) and np.all(grid[:, 3] == 255)  # separators
    assert np.all(grid[6:8, 4:7] == 255)  # the empty cell after the last channel


def test_tile_without_gap_is_the_notebook_layout(rng):
    levels = rng.integers(0, 256, (4, 4, 32), dtype=np.uint8)
    grid = tile(levels, per_row=16, gap=0)
    expected = np.zeros((2 * 4, 16 * 4), np.uint8)  # the notebook's loop
    for col in range(2):
        for row in range(16):
            expected[col * 4:(col + 1) * 4, row * 4:(row + 1) * 4] = levels[:, :, col * 16 + row]
    np.testing.assert_array_equal(grid, expected)


def test_palette_is_the_matplotlib_colour_map():
    import matplotlib

    table = palette("viridis")
    reference = matplotlib.colormaps["viridis"](np.arange(256) / 255.0)[:, :3] * 255
    assert np.abs(table[:255].astype(int) - reference[:255]).max() <= 1
    assert tuple(table[255]) == (255, 255, 255)
    with pytest.raises(ValueError, match="Unknown colour map"):
        palette("no_such_map")


def test_feature_grid_rgb_pixels(rng):
    activation = rng.random((6, 5, 3), dtype=np.float32)
    grid = feature_grid(activation, per_row=2, cmap="gray", gap=1)
    rgb = grid.rgb()
    levels = np.minimum(notebook_levels(activation).astype(int), 254)
    y, x = grid.cell(2)
    assert (y, x) == (7, 0)
    tile_rgb = rgb[y: y + 6, x: x + 5]
    assert np.abs(tile_rgb[..., 0].astype(int) - levels[:, :, 2]).max() <= 1
    assert grid.index.max() <= 255 and grid.rows == 2 and grid.cols == 2


def test_feature_grid_shrinks_for_display(rng):
    activation = rng.random((300, 300, 64), dtype=np.float32)
    grid = feature_grid(activation, per_row=16, display_width=1200)
    assert 600 < grid.index.shape[1] <= 1200 and grid.tile == (60, 60)  # whole-block shrink by 5
    small = feature_grid(activation[:7, :7], per_row=16, display_width=1200)
    assert small.tile == (63, 63)  # 7x7 tiles enlarged 9 times, pixel by pixel
    np.testing.assert_array_equal(small.index[:9, :9], small.index[0, 0])
    assert feature_grid(activation, per_row=16).index.shape == (4 * 301 - 1, 16 * 301 - 1)


def test_shrink_is_a_block_average():
    activation = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    np.testing.assert_array_equal(shrink(activation, 2)[:, :, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_png_round_trip(rng):
    import io

    from PIL import Image

    grid = feature_grid(rng.random((8, 8, 5), dtype=np.float32), per_row=3, cmap="magma")
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(grid))).convert("RGB"))
    np.testing.assert_array_equal(decoded, grid.rgb())
    assert isinstance(grid, FeatureGrid)


@pytest.mark.parametrize("contrast", ["channel", "layer"])
def test_feature_grid_of_chosen_channels_draws_their_tiles_as_the_whole_grid_does(rng, contrast):
    activation = rng.gamma(1.0, 2.0, (6, 5, 10)).astype(np.float32)
    activation[:, :, 4] *= 10  # the strongest channel: on the layer's one scale, the others are darker
    whole = feature_grid(activation, per_row=4, contrast=contrast)
    chosen = [4, 7, 2]
    part = feature_grid(activation, per_row=4, contrast=contrast, only=chosen)
    assert (part.rows, part.cols) == (1, 3)
    for slot, channel in enumerate(chosen):
        y, x = part.cell(slot)
        y0, x0 = whole.cell(channel)
        np.testing.assert_array_equal(part.index[y:y + 6, x:x + 5], whole.index[y0:y0 + 6, x0:x0 + 5])


def test_screen_channels_keeps_full_rows_of_a_first_screen_and_every_channel_of_a_short_grid():
    from actviz.draw.grids import screen_channels

    # 10 x 10 tiles, 4 a row, 400 px wide: 4 * 11 = 44 px -> enlarged 9 times: rows of 91 px
    assert screen_channels((10, 10, 40), per_row=4, display_width=400, height=200) == 4 * 2  # 10 rows; 2 fit in 200 px
    assert screen_channels((10, 10, 12), per_row=4, display_width=400, height=200) == 12      # 3 rows: 273 px <= 300
    assert screen_channels((10, 10, 40), per_row=4, display_width=400, height=50) == 8        # at least two rows
