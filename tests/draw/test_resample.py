"""The two bilinear resizings of ``draw.resample``, each against an independent computation:
corners aligned against ``np.interp`` along each axis, cell centres aligned against Pillow's own
``BILINEAR`` resize (enlarging and shrinking); and the overlay placed by the second."""

import numpy as np
import pytest
from PIL import Image

from actviz.draw.figures import overlay
from actviz.draw.grids import palette
from actviz.draw.resample import resize_centred, upsample


def _pillow(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(values.astype(np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def test_upsample_aligns_corners_as_np_interp_does(rng):
    maps = rng.random((2, 3, 4, 2))
    out = upsample(maps, (7, 10))
    rows, cols = np.linspace(0, 2, 7), np.linspace(0, 3, 10)
    for n in range(2):
        for k in range(2):
            across = np.stack([np.interp(cols, np.arange(4), line) for line in maps[n, :, :, k]])  # (3, 10)
            want = np.stack([np.interp(rows, np.arange(3), column) for column in across.T], axis=1)  # (7, 10)
            np.testing.assert_allclose(out[n, :, :, k], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,size", [((7, 7), (224, 224)), ((2, 3), (5, 7)), ((14, 10), (300, 200)), ((56, 56), (8, 8)), ((30, 12), (11, 25))])
def test_resize_centred_is_pillows_bilinear(rng, shape, size):
    values = rng.random(shape)
    before = values.copy()
    out = resize_centred(values, size)
    assert out.dtype == np.float32 and out.shape == size
    np.testing.assert_allclose(out, _pillow(values, size), rtol=0, atol=1e-6)
    assert out.min() >= values.min() - 1e-6 and out.max() <= values.max() + 1e-6
    np.testing.assert_array_equal(values, before)  # the map is not modified in place


def test_overlay_puts_each_cell_over_the_middle_of_its_block():
    heat = np.array([[0.0, 1.0]])  # two cells over four pixels: each cell's value at the middle of its two
    picture = overlay(np.zeros((1, 4, 3), np.uint8), heat, opacity=1.0, cmap="gray")
    levels = [0, 64, 191, 255]  # 0, 1/4, 3/4, 1 of the way, rounded
    np.testing.assert_array_equal(picture[0, :3], palette("gray")[levels[:3]])
    assert picture[0, 3].tolist() == [255, 255, 255]  # the top of the map: gray's top colour
