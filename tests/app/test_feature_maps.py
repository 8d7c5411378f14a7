"""The page "Feature maps" (views/feature_maps.py) through AppTest, against plain Keras."""

import numpy as np

from actviz.draw.rounding import for_people
from visit import keras_maps, read, texts


def _blank(layer):
    maps = keras_maps(layer)
    flat = maps.reshape(-1, maps.shape[-1])
    return int((flat.min(axis=0) == flat.max(axis=0)).sum())


def _headings(at):
    return [read(m.value) for m in at.markdown if m.value.startswith("##### ")]


def test_feature_maps_view_shows_the_chosen_layers_in_network_order_with_their_blank_channels(app):
    at = app.run()
    at.switch_page("views/feature_maps.py").run()
    at.sidebar.multiselect[0].set_value(["block2_pool", "block1_conv2"]).run()  # chosen out of order
    assert not at.exception and not at.error
    # plain titles first (the place among the 9 layers, the filters and their size), in network order ...
    assert _headings(at) == ["##### Layer 2 of 9 (block1_conv2): 16 filters, each 56 x 56",
                             "##### Layer 6 of 9 (block2_pool): 32 channels, each 14 x 14"]
    # ... the technical line under each
    assert f"block1_conv2 · Conv2D · 56 x 56 x 16 · {_blank('block1_conv2')} of 16 channels blank" in texts(at)
    assert f"block2_pool · MaxPooling2D · 14 x 14 x 32 · {_blank('block2_pool')} of 32 channels blank" in texts(at)
    assert len(at.image) == 1 + 2  # the input image, then one grid per layer
    assert [b.key for b in at.download_button] == ["png_block1_conv2", "png_block2_pool", "zip", "npz"]
    assert not at.main.toggle  # every channel of the demo's layers fits on a screen: nothing is held back


def test_feature_maps_view_shows_a_large_layer_s_most_active_channels_first_and_all_on_request(app):
    at = app.run()
    at.switch_page("views/feature_maps.py").run()
    at.sidebar.multiselect[0].set_value(["block3_conv2"]).run()
    at.sidebar.slider(key="per_row").set_value(4).run()  # 64 channels, 4 a row: 16 rows, more than a screen
    assert not at.exception and not at.error
    means = keras_maps("block3_conv2").mean(axis=(0, 1))
    order = np.argsort(-means, kind="stable")
    words = texts(at)
    assert "The 20 most active of its 64 filters, most active first" in words  # 6 rows of 85 px fit in a first screen of 480
    assert f"from {for_people(means[order[0]])} (channel {order[0]}) down to {for_people(means[order[19]])} (channel {order[19]})" in words
    shown = at.expander[0].dataframe[0].value  # which tile is which channel, on request
    assert shown["channel"].tolist() == order[:20].tolist() and shown["average response"].tolist() == [for_people(means[c]) for c in order[:20]]
    show_all = at.toggle(key="all_channels_block3_conv2")
    assert show_all.label == "Show all 64 filters" and not show_all.value
    show_all.set_value(True).run()
    assert not at.exception and "most active of its" not in texts(at) and len(at.image) == 2 and not at.expander


def test_feature_maps_view_asks_for_a_layer_when_none_is_chosen(app):
    at = app.run()
    at.sidebar.multiselect[0].set_value([]).run()
    assert not at.exception and not at.error
    assert "Choose one or more layers in the sidebar." in [i.value for i in at.info]
    assert len(at.image) == 1 and not at.download_button
