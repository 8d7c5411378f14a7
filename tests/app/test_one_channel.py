"""The page "One channel" (views/one_channel.py) through AppTest, against plain Keras."""

from visit import keras_maps


def test_one_channel_view_renders(app):
    at = app.run()
    at.switch_page("views/one_channel.py").run()
    assert not at.exception and not at.error, "One channel"


def test_one_channel_view_shows_the_values_plain_keras_computes(app):
    at = app.run()
    at.switch_page("views/one_channel.py").run()
    at.selectbox(key="channel_layer").set_value("block2_conv1").run()
    channel = at.selectbox(key="channel_block2_conv1").options[0]  # the most active channel comes first
    maps = keras_maps("block2_conv1")
    assert channel.startswith(f"channel {maps.mean(axis=(0, 1)).argmax()} ")
    number = int(channel.split()[1])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Lowest value"] == f"{maps[:, :, number].min():.4g}" and metrics["Highest value"] == f"{maps[:, :, number].max():.4g}"


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
