"""Model: the layers of the model in order, each with what it does in plain words; the Keras
names and types for programmers, nested models indented."""

from __future__ import annotations

import streamlit as st

from actviz.draw.tables import layer_rows
from views.common import context, md

#: The table's columns that need a word of explanation.
COLUMNS = {
    "#": st.column_config.NumberColumn("#", help="The layer's number: the command line and the notebook take it instead of the name."),
    "type": st.column_config.TextColumn("type", help="The layer's kind, as Keras names it."),
    "parameters": st.column_config.TextColumn("parameters", help="How many numbers the layer learned in training (its weights)."),
    "shown": st.column_config.TextColumn("shown", help="yes: drawn on the pages without asking; on request: it has an image-like output, "
                                         "offered when the sidebar's switch for the other layers is on; no: it has no image-like output."),
}


def show() -> None:
    this_run = context()
    probe = this_run.opened.probe
    size = " x ".join("any" if d is None else str(d) for d in probe.input_shape)
    st.caption(
        f"The layers of **{md(this_run.choice.label)}**, from the input (top) to the answer (bottom), each with what it does. "
        f"The image enters as {size} numbers (height x width x colour channels)."
    )
    rows = layer_rows(probe.table)
    height = min(36 * (len(rows) + 1) + 4, 720)
    st.dataframe(rows, hide_index=True, height=height, column_config=COLUMNS,
                 column_order=["#", "layer", "what it does", "output", "parameters", "shown"])
    st.caption(f"{sum(info.params for info in probe.table if info.depth == 0):,} parameters in all.")
    with st.expander("For programmers: the Keras types"):
        st.caption("The layers the way Keras's model.summary() lists them. A layer of a model nested inside this one is "
                   "indented under it, and its name starts with the nested model's name and a slash (vgg16/block1_conv1).")
        st.dataframe(rows, hide_index=True, height=height, column_config=COLUMNS, column_order=["#", "layer", "type", "output", "parameters"])


show()
