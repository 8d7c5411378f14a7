"""One channel: any channel of a layer large, with a colour bar and its values; the most active
channels first; a link to the data set's images that excite it most.

Other pages open it on a channel with ``go_to("views/one_channel.py", layer=..., channel=...)``.
"""

from __future__ import annotations

import streamlit as st

from actviz.draw.figures import channel_picture, picture_png
from actviz.draw.stats import channel_numbers
from views.common import Context, context, followed_link, go_to, held_summary, shown


def channel_png(key: tuple, title: str, channel: int, cmap: str, activation) -> bytes:
    """One channel of ``activation`` (float32 (H, W, C)) as a picture with a colour bar, PNG bytes."""
    return shown(("channel", key, title, channel, cmap), lambda: picture_png(channel_picture(activation[:, :, channel], cmap=cmap, title=title)))


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
    layer = st.selectbox("Layer", list(context.result.maps), key="channel_layer", bind="query-params")
    numbers = context.stats[layer]
    channel = st.selectbox(
        "Channel", numbers.channels_by_activity(), key=f"channel_{layer}", bind="query-params",
        format_func=lambda c: f"channel {c} (average {numbers.channel_means[c]:.3g}{', blank' if c in numbers.blank else ''})",
    )
    activation = context.result.maps[layer][0]
    values = channel_numbers(activation[:, :, channel])
    left, right = st.columns([3, 2])
    title = f"{layer}, channel {channel}" if activation.shape[-1] > 1 else layer
    left.image(channel_png(context.key, title, channel, context.cmap, activation), width="content")
    right.metric("Lowest value", f"{values.low:.4g}")
    right.metric("Highest value", f"{values.high:.4g}")
    right.metric("Share of zeros", f"{values.zeros:.0%}")
    right.caption("Bright areas are where this filter's pattern is in the image. All one colour: the filter found nothing.")
    held = held_summary(context)
    if held is None or layer not in held[0].layout.names:
        right.caption("Run the model over a data set ('Across a data set') to see the images that excite this channel most.")
    elif right.button("The images of the data set that excite this channel most", key="channel_to_dataset"):
        go_to("views/dataset.py", layer=layer, channel=channel)


show(context())
