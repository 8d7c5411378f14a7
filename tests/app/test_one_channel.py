"""The page "One channel" (views/one_channel.py) through AppTest, against plain Keras."""

from actviz.draw.rounding import for_people
from visit import keras_maps, texts


def test_one_channel_view_renders(app):
    at = app.run()
    at.switch_page("views/one_channel.py").run()
    assert not at.exception and not at.error, "One channel"


def test_one_channel_view_shows_the_values_plain_keras_computes(app):
    at = app.run()
    at.switch_page("views/one_channel.py").run()
    at.selectbox(key="channel_layer").set_value("block2_conv1").run()
    assert "Layer 4 of 9 (block2_conv1): 32 filters, each 28 x 28" in texts(at)  # the layer in plain words
    channel = at.selectbox(key="channel_block2_conv1").options[0]  # the most active channel comes first
    maps = keras_maps("block2_conv1")
    assert channel.startswith(f"channel {maps.mean(axis=(0, 1)).argmax()} ")
    number = int(channel.split()[1])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Lowest value"] == for_people(maps[:, :, number].min()) and metrics["Highest value"] == for_people(maps[:, :, number].max())
    assert channel == f"channel {number} (average {for_people(maps[:, :, number].mean())})"  # rounded for people


def test_one_channel_view_opens_on_the_channel_its_address_names(app):
    """What another page's link sends (layer and channel in the address); a link to a layer or
    channel this image does not have leaves the page as it is."""
    at = app.run()
    at.query_params.update({"layer": "block2_conv1", "channel": "5"})
    at.switch_page("views/one_channel.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="channel_layer").value == "block2_conv1" and at.selectbox(key="channel_block2_conv1").value == 5
    assert "layer" not in at.query_params and "channel" not in at.query_params  # read once: the visitor's choices win from now on
    at.selectbox(key="channel_block2_conv1").set_value(7).run()
    assert at.selectbox(key="channel_block2_conv1").value == 7
    at.query_params.update({"layer": "block2_conv1", "channel": "99"})
    at.run()
    assert not at.exception and at.selectbox(key="channel_block2_conv1").value == 7


def test_one_channel_view_lays_the_channel_over_the_image_on_request(app):
    at = app.run()
    at.switch_page("views/one_channel.py").run()
    assert not at.toggle(key="channel_overlay").value and "over the image" not in at.image[1].proto.imgs[0].caption
    at.toggle(key="channel_overlay").set_value(True).run()
    assert not at.exception and not at.error
    assert len(at.image) == 2 and "over the image" in at.image[1].proto.imgs[0].caption
    assert {m.label for m in at.metric} == {"Lowest value", "Highest value", "Share of zeros"}  # the numbers stay
