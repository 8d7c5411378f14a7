"""The page "Feature maps" (views/feature_maps.py) through AppTest, against plain Keras."""

from visit import keras_maps, texts


def _blank(layer):
    maps = keras_maps(layer)
    flat = maps.reshape(-1, maps.shape[-1])
    return int((flat.min(axis=0) == flat.max(axis=0)).sum())


def test_feature_maps_view_shows_the_chosen_layers_in_network_order_with_their_blank_channels(app):
    at = app.run()
    at.switch_page("views/feature_maps.py").run()
    at.sidebar.multiselect[0].set_value(["block2_pool", "block1_conv2"]).run()  # chosen out of order
    assert not at.exception and not at.error
    headings = [m.value for m in at.markdown if m.value.startswith("##### ")]
    assert [heading.split(" · ")[0] for heading in headings] == ["##### block1\\_conv2", "##### block2\\_pool"]
    assert f"block1_conv2 · Conv2D · 56 x 56 x 16 · {_blank('block1_conv2')} of 16 channels blank" in texts(at)
    assert f"block2_pool · MaxPooling2D · 14 x 14 x 32 · {_blank('block2_pool')} of 32 channels blank" in texts(at)
    assert len(at.image) == 1 + 2  # the input image, then one grid per layer
    assert [b.key for b in at.download_button] == ["png_block1_conv2", "png_block2_pool", "zip", "npz"]


def test_feature_maps_view_asks_for_a_layer_when_none_is_chosen(app):
    at = app.run()
    at.sidebar.multiselect[0].set_value([]).run()
    assert not at.exception and not at.error
    assert "Choose one or more layers in the sidebar." in [i.value for i in at.info]
    assert len(at.image) == 1 and not at.download_button
