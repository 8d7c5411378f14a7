"""Layer statistics: sparsity and blank channels across the depth of the network, with a sentence
saying what it means, and the numbers of every layer in a table."""

from __future__ import annotations

import streamlit as st

from actviz.draw.figures import depth_chart
from actviz.draw.rounding import for_people
from actviz.draw.stats import depth_summary
from views.common import Context, context, md, shown


#: What the table's columns mean, on hovering over their names.
COLUMNS = {
    "zero values": st.column_config.TextColumn("zero values", help="Sparsity: the share of the layer's numbers that are exactly zero."),
    "blank channels": st.column_config.TextColumn("blank channels", help="Channels in one flat colour: filters that found nothing in this image."),
    "average": st.column_config.TextColumn("average", help="The layer's average response to this image."),
    "highest": st.column_config.TextColumn("highest", help="The layer's strongest response anywhere in this image."),
    "most active channels": st.column_config.TextColumn(
        "most active channels", help="The five channels with the highest average response, most active first; the page One channel "
                                     "lists every channel of a layer with its average."),
}


def depth_png(key: tuple, stats: tuple) -> bytes:
    """The chart of zero values and blank channels by depth, PNG bytes, for the forward pass ``key``."""
    return shown(("depth", key), lambda: depth_chart(list(stats)))


def show(context: Context) -> None:
    ordered = list(context.stats.values())
    st.caption(
        "How active each layer is, from the input to the output. **Zero values** (sparsity): the share of the layer's "
        "numbers that are exactly zero. **Blank channels**: filters that found nothing at all in this image."
    )
    if len(ordered) > 1:
        st.markdown(md(depth_summary(ordered)))
        st.image(depth_png(context.key, tuple(ordered)), width="content")
    rows = [{
        "layer": s.name, "size": f"{s.shape[0]} x {s.shape[1]}", "channels": s.channels,
        "zero values": f"{s.sparsity:.0%}", "blank channels": f"{len(s.blank)} of {s.channels}",
        "average": for_people(s.mean), "highest": for_people(s.max),
        "most active channels": ", ".join(map(str, s.top[:5])),
    } for s in ordered]
    st.dataframe(rows, hide_index=True, height=min(36 * (len(rows) + 1) + 4, 720), column_config=COLUMNS)
    st.caption("The same numbers, with the list of blank channels, are in stats.csv inside the ZIP download.")


show(context())
