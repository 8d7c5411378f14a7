"""Layer statistics: sparsity and blank channels across the depth of the network, with a sentence
saying what it means, and the numbers of every layer in a table."""

from __future__ import annotations

import streamlit as st

from actviz.draw.figures import depth_chart
from actviz.draw.stats import depth_summary
from views.common import Context, context, md, shown


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
        "average": f"{s.mean:.3g}", "highest": f"{s.max:.3g}",
        "most active channels": ", ".join(map(str, s.top[:5])),
    } for s in ordered]
    st.dataframe(rows, hide_index=True, height=min(36 * (len(rows) + 1) + 4, 720))
    st.caption("The same numbers, with the list of blank channels, are in stats.csv inside the ZIP download.")


show(context())
