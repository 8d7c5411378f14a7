"""The page "Layer statistics" (views/statistics.py) through AppTest, against plain Keras."""

import numpy as np

from actviz.draw.rounding import for_people
from visit import keras_maps, texts


def test_statistics_view_says_what_the_depth_shows(app):
    at = app.run()
    at.switch_page("views/statistics.py").run()
    assert not at.exception and not at.error, "Layer statistics"
    assert "share of zero values grows" in texts(at)


def test_statistics_view_counts_zeros_and_blank_channels_as_plain_keras_does(app):
    at = app.run()
    at.switch_page("views/statistics.py").run()
    table = at.dataframe[0].value
    assert len(table) == 9  # the demo's convolution and pooling layers, from the input to the output
    for row in table.to_dict("records"):
        maps = keras_maps(row["layer"]).reshape(-1, row["channels"])
        blank = int((maps.min(axis=0) == maps.max(axis=0)).sum())
        assert row["zero values"] == f"{np.mean(maps == 0):.0%}", row
        assert row["blank channels"] == f"{blank} of {row['channels']}", row
        assert row["average"] == for_people(maps.mean()) and row["highest"] == for_people(maps.max()), row  # rounded for people
