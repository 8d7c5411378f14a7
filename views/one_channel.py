"""One channel: any channel of a layer large, with a colour bar and its values, or laid over the
image to see where on it the filter responds; the most active channels first; a link to the data
set's images that excite it most.

Other pages open it on a channel with ``go_to("views/one_channel.py", layer=..., channel=...)``.
"""

from __future__ import annotations

import streamlit as st

from actviz.draw.figures import channel_overlay, channel_picture, picture_png
from actviz.draw.rounding import for_people
from actviz.draw.stats import channel_numbers, layer_titles
from views.common import Context, context, followed_link, go_to, held_summary, md, shown


def channel_png(key: tuple, title: str, channel: int, cmap: str, activation) -> bytes:
    """One channel of ``activation`` (float32 (H, W, C)) as a picture with a colour bar, PNG bytes."""
    return shown(("channel", key, title, channel, cmap), lambda: picture_png(channel_picture(activation[:, :, channel], cmap=cmap, title=title)))


def overlay_png(key: tuple, layer: str, channel: int, cmap: str, pixels, activation) -> bytes:
    """One channel of ``activation`` (float32 (h, w, C)) laid over ``pixels`` (uint8 (H, W, 1|3), the
    image as the model sees it), PNG bytes."""
    return shown(("channel over image", key, layer, channel, cmap), lambda: picture_png(channel_overlay(pixels, activation[:, :, channel], cmap=cmap)))


def open_link(context: Context) -> None:
    """Start on the layer and channel a link names (another page's "show it up close"), if this image has them."""
    link = followed_link("layer", "channel")
    if link is None or link["layer"] not in context.result.maps or not link["channel"].isdigit():
        return
    layer, channel = link["layer"], int(link["channel"])
    if channel < context.stats[layer].channels:
        st.session_state["channel_layer"] = layer
        st.session_state[f"channel_{layer}"] = channel


def show(context: Context) -> None:
    st.caption(
        "One channel up close: the answer of a single filter, with its actual values. The most active channels of the "
        "layer are listed first."
    )
    open_link(context)
    # named as in the address it is bound to (a formatted name would be the address's value)
    layer = st.selectbox("Layer", list(context.result.maps), key="channel_layer", bind="query-params")
    st.caption(md(layer_titles(list(context.stats.values()), table=context.opened.probe.table)[layer]))
    numbers = context.stats[layer]
    channel = st.selectbox(
        "Channel", numbers.channels_by_activity(), key=f"channel_{layer}", bind="query-params",
        format_func=lambda c: f"channel {c} (average {for_people(numbers.channel_means[c])}{', blank' if c in numbers.blank else ''})",
    )
    over = st.toggle("Lay it over the image", key="channel_overlay", persist_state="session",
                     help="Where on the image the filter responds: the more colour, the stronger the response.")
    activation = context.result.maps[layer][0]
    values = channel_numbers(activation[:, :, channel])
    left, right = st.columns([3, 2])
    if over:
        left.image(overlay_png(context.key, layer, channel, context.cmap, context.pixels, activation), width="content",
                   caption=f"Channel {channel} of {md(layer)} over the image: no colour where it does not respond, the colour map's "
                           "brightest colour where it responds most.")
    else:
        title = f"{layer}, channel {channel}" if activation.shape[-1] > 1 else layer
        left.image(channel_png(context.key, title, channel, context.cmap, activation), width="content")
    right.metric("Lowest value", for_people(values.low))
    right.metric("Highest value", for_people(values.high))
    right.metric("Share of zeros", f"{values.zeros:.0%}")
    right.caption("Bright areas are where this filter's pattern is in the image. All one colour: the filter found nothing.")
    held = held_summary(context)
    if held is None or layer not in held[0].layout.names:
        right.caption("Run the model over a data set ('Across a data set') to see the images that excite this channel most.")
    elif right.button("The images of the data set that excite this channel most", key="channel_to_dataset"):
        go_to("views/dataset.py", layer=layer, channel=channel)


show(context())
