"""The page "Compare two images" (views/compare.py) through AppTest, against plain Keras."""

import numpy as np

from actviz.draw.rounding import for_people
from visit import keras_maps, texts


def test_compare_view_shows_both_answers_and_the_channels_most_apart(app):
    at = app.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception and not at.error
    assert "Channels that respond most differently" in texts(at)
    assert sum("The model says: **digit" in m.value for m in at.markdown) == 3  # the header, then both images


def test_compare_view_lists_the_channels_most_apart_as_numpy_ranks_them(app):
    at = app.run()
    at.switch_page("views/compare.py").run()
    layer = at.selectbox(key="compare_layer").value
    first, second = keras_maps(layer, sample=0), keras_maps(layer, sample=1)  # the sidebar's sample, the page's second one
    spread = np.concatenate([first, second]).std(axis=(0, 1))
    apart = np.abs(first - second).mean(axis=(0, 1)) / np.where(spread > 0, spread, 1)
    order = np.argsort(-apart, kind="stable")[:10]
    table = at.dataframe[0].value.to_dict("records")
    assert [row["channel"] for row in table] == order.tolist()
    assert [row["how far apart"] for row in table] == [for_people(apart[c]) for c in order]
    stronger = (first - second).mean(axis=(0, 1))
    assert [row["responds more to"] for row in table] == ["the first image" if stronger[c] > 0 else "the second image" for c in order]
