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
