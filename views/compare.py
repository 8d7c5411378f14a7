"""Compare two images: one layer for the sidebar's image and a second one, on one colour scale,
their difference, both answers, and a list of the channels that respond most differently, any of
them up close in both images."""

from __future__ import annotations

import streamlit as st

from actviz.core.predictions import class_probabilities
from actviz.draw.compare import channel_pair, compare_maps
from actviz.draw.figures import screen_image
from actviz.draw.grids import png_bytes
from actviz.draw.rounding import for_people, percent
from actviz.draw.stats import layer_titles
from actviz.errors import ActvizError
from actviz.safety.loading import file_digest
from views.common import DISPLAY_WIDTH, IMAGE_TYPES, Context, context, forward_pass, load_image, md


def second_image_ui(context: Context) -> tuple[str, bytes] | None:
    """The second image: a sample that goes with the model, or an upload (None: not given yet)."""
    samples = {sample.label: sample.path for sample in context.choice.samples}
    sources = (["Sample image"] if samples else []) + ["Upload"]
    source = st.radio("Second image", sources, key="compare_source", horizontal=True)
    if source == "Upload":
        upload = st.file_uploader("Second image", type=IMAGE_TYPES, key="compare_upload")
        if upload is None:
            st.info("Upload a second image to compare.")
            return None
        return upload.name, upload.getvalue()
    label = st.selectbox("Sample", list(samples), index=min(1, len(samples) - 1), key="compare_sample")
    return label, samples[label].read_bytes()


def show(context: Context) -> None:
    st.caption(
        "Two images through the same layer, on one colour scale, so equal colours mean equal responses. The third grid "
        "shows the difference (red: stronger for the first image, blue: stronger for the second)."
    )
    second = second_image_ui(context)
    if second is None:
        return
    other_name, other_bytes = second
    layer = st.selectbox("Layer", list(context.result.maps), key="compare_layer",
                         format_func=layer_titles(list(context.stats.values()), table=context.opened.probe.table).get)
    other_digest = file_digest(other_bytes)
    try:
        other_pixels, other_batch = load_image(other_digest, context.choice.key, context.scaling, other_bytes, context.opened)
        other = forward_pass((context.choice.key, other_digest, context.scaling, ("layer", layer)), context.opened, other_batch, [layer],
                             hold="_compare_result")
    except ActvizError as exc:
        st.error(f"The second image cannot be used: {md(exc)}")
        return
    first_map, second_map = context.result.maps[layer][0], other.maps[layer][0]
    per_row = min(context.per_row, 8)  # two grids side by side: fewer, larger tiles
    try:
        comparison = compare_maps(first_map, second_map, per_row=per_row, cmap=context.cmap, display_width=DISPLAY_WIDTH // 2,
                                  difference_layout=(per_row * 2, DISPLAY_WIDTH))
    except ActvizError as exc:
        st.error(md(exc))
        return
    columns = st.columns(2)
    for column, title, picture, prediction, grid in (
        (columns[0], "First image (chosen in the sidebar)", context.pixels, context.result.predictions[0][0], comparison.grid_a),
        (columns[1], f"Second image: {md(other_name)}", other_pixels, other.predictions[0][0], comparison.grid_b),
    ):
        best, chance = class_probabilities(prediction, context.class_names)[0]
        column.markdown(f"**{title}**  \nThe model says: **{md(best)}** ({percent(chance)})")
        column.image(screen_image(picture), width=120)
        column.image(png_bytes(grid), width="content")
    st.markdown("**Difference** (first minus second; white: the same, red: stronger for the first image, blue: for the second)")
    st.image(png_bytes(comparison.difference), width="content")
    st.markdown("**Channels that respond most differently**")
    st.caption("How far apart: 0 means the channel answers both images alike; 1 means its answers differ as much as its "
               "values spread over the two images (one standard deviation), more is a stronger difference.")
    st.dataframe(comparison.rows(top=10), hide_index=True, width="content")
    channel = st.selectbox(
        "Look at one channel in both images", [int(c) for c in comparison.ranking], key=f"compare_channel_{layer}",
        format_func=lambda c: f"channel {c}: {for_people(comparison.scores[c])} apart",
    )
    left, right = st.columns(2)
    for column, picture in zip((left, right), channel_pair(first_map, second_map, channel, cmap=context.cmap)):
        column.image(picture)


show(context())
