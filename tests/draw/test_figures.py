import io
import warnings

import numpy as np
from PIL import Image

from actviz.draw.figures import channel_picture, depth_chart
from actviz.draw.grids import palette
from actviz.draw.stats import layer_stats


def test_channel_picture_spans_min_to_max_in_blocks():
    channel = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    picture = channel_picture(channel, cmap="gray", size=100)
    assert picture.dtype == np.uint8 and picture.ndim == 3
    top = 6  # no title
    block = picture[top: top + 50, 0:50]
    assert np.all(block == palette("gray")[0])  # the minimum: darkest, a 50x50 block
    assert np.all(picture[top + 50: top + 100, 50:100] == palette("gray")[254])  # the maximum


def test_channel_picture_constant_channel_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        picture = channel_picture(np.full((3, 5), 2.0, np.float32), title="dead")
    assert picture.shape[0] > 20


def test_depth_chart_is_a_png():
    stats = [layer_stats(f"l{i}", np.random.default_rng(i).random((4, 4, 3)).astype(np.float32) - 0.5 * i) for i in range(3)]
    image = Image.open(io.BytesIO(depth_chart(stats)))
    assert image.format == "PNG" and image.size[0] > 300


def test_overlay_by_value_leaves_the_image_plain_where_the_map_is_zero():
    from actviz.draw.figures import overlay

    pixels = np.full((4, 4, 1), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[:2] = 1.0  # the top half at the map's top, the bottom half at zero
    even = overlay(pixels, heat, opacity=0.5, cmap="gray")
    weighed = overlay(pixels, heat, opacity=0.5, cmap="gray", by_value=True)
    assert np.all(even[:2] == 178) and np.all(weighed[:2] == 178)  # 100 / 2 + 255 / 2, rounded
    assert np.all(even[2:] == 50) and np.all(weighed[2:] == 100)   # the map's bottom colour (black) at half, or the image itself
    assert pixels.shape == (4, 4, 1) and np.all(pixels == 100)     # the input is not modified


def test_channel_overlay_is_enlarged_in_blocks_and_plain_where_the_channel_is_lowest():
    from actviz.draw.figures import channel_overlay

    pixels = np.full((4, 4, 3), 60, np.uint8)
    channel = np.array([[0.0, 0.0], [2.0, 4.0]], np.float32)  # one value per 2 x 2 block of the image
    picture = channel_overlay(pixels, channel, cmap="gray", opacity=1.0, size=8)
    assert picture.shape == (8, 8, 3) and picture.dtype == np.uint8  # zoom 2
    assert np.all(picture[:2, :2] == 60)   # the lowest value: the image as it is
    assert np.all(picture[6:, 6:] == 255)  # the highest: the colour map's top, fully opaque
    flat = channel_overlay(pixels, np.full((2, 2), 3.0, np.float32), size=4)
    assert np.all(flat == 60)  # a flat channel leaves the image as it is
