"""Crops: seeded by the image alone, inside the image, enlarged as Pillow enlarges them."""

from __future__ import annotations

import numpy as np
from PIL import Image

from actviz.concepts.crops import crop_batch, crop_boxes, crop_pixels


def test_crops_depend_on_the_image_index_and_seed_only():
    first = crop_boxes(17, (24, 32), count=8, seed=3)
    np.testing.assert_array_equal(first, crop_boxes(17, (24, 32), count=8, seed=3))
    assert not np.array_equal(first, crop_boxes(18, (24, 32), count=8, seed=3))
    assert not np.array_equal(first, crop_boxes(17, (24, 32), count=8, seed=4))


def test_crops_lie_inside_the_image_and_keep_its_shape():
    boxes = crop_boxes(5, (60, 90), count=200, sides=(0.3, 0.6))
    x0, y0, x1, y1 = boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 90).all() and (y1 <= 60).all()
    share = (y1 - y0) / 60
    assert share.min() >= 0.29 and share.max() <= 0.61
    np.testing.assert_allclose((x1 - x0) / 90, share, atol=0.02)  # the image's aspect ratio, rounded to pixels


def test_a_crop_is_pillow_crop_then_bilinear_resize_and_the_image_is_untouched(rng):
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    before = pixels.copy()
    found = crop_pixels(pixels, (4, 2, 19, 12), (20, 30))
    expected = np.asarray(Image.fromarray(pixels).crop((4, 2, 19, 12)).resize((30, 20), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(pixels, before)
    grey = crop_batch([pixels[..., :1]], [(0, (0, 0, 10, 10))])
    assert grey.shape == (1, 20, 30, 1) and grey.dtype == np.uint8
