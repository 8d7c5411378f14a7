"""Feature maps: one grid per layer chosen in the sidebar, titled in plain words with the technical
line under it; a large layer shows its most active channels first and the rest on request. Each
grid has its full-resolution PNG, and all of them come as a ZIP or the raw activations as .npz
(computed when clicked)."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from actviz.draw.export import export_bundle, zip_bytes
from actviz.draw.grids import feature_grid, png_bytes, screen_channels
from actviz.draw.stats import first_screen_words, layer_caption, layer_titles, most_active_rows, technical_line
from actviz.text import file_name
from views.common import DISPLAY_WIDTH, Context, context, md, shown


def grid_for_screen(key: tuple, layer: str, per_row: int, cmap: str, contrast: str, activation, only: tuple | None = None) -> bytes:
    """A layer's grid sized for a screen, as PNG bytes (palette PNG: small and quick);
    ``activation``: float32 (H, W, C), the layer's maps for the image; ``only``: the channels to
    draw, in that order (None: every channel, in channel order)."""
    return shown(("grid", key, layer, per_row, cmap, contrast, only), lambda: png_bytes(
        feature_grid(activation, per_row=per_row, cmap=cmap, contrast=contrast, display_width=DISPLAY_WIDTH, only=only)))


def deferred_bundle(context: Context, names: list[str], *, pick: str | None = None, npz: bool = False) -> Callable[[], bytes]:
    """A download computed when clicked, from the model and the image only.

    Download buttons keep their callables for the whole session; capturing the
    feature maps here would keep 100+ MB alive per visitor after the page let
    them go. Clicking costs one forward pass instead.
    """
    opened, batch, per_row, cmap, contrast = context.opened, context.batch, context.per_row, context.cmap, context.contrast

    def build() -> bytes:
        files, _ = export_bundle(opened.probe, batch, names, per_row=per_row, cmap=cmap, contrast=contrast, npz=npz)
        if pick:
            return next(data for file, data in files.items() if file.endswith(pick))
        return zip_bytes(files)

    return build


def layer_grid(context: Context, name: str, *, title: str, position: int, count: int) -> None:
    """One layer: its plain title, its technical line and what to notice, then its grid (a large
    layer's most active channels first, every channel on request) and its download."""
    info = context.opened.probe.layer(name)
    numbers = context.stats[name]
    unit = info.unit_words
    st.markdown(f"##### {md(title)}")
    st.caption(f"{md(technical_line(numbers, info.type))}  \n{md(layer_caption(position - 1, count, numbers))}")
    activation = context.result.maps[name][0]
    first = screen_channels(numbers.shape, per_row=context.per_row, display_width=DISPLAY_WIDTH)
    grid = st.container()  # drawn above the switch that chooses what it shows, as "show more" reads
    only = None
    if first < numbers.channels and not st.toggle(f"Show all {numbers.channels:,} {unit}", key=f"all_channels_{name}"):
        only = tuple(numbers.channels_by_activity()[:first])
        grid.caption(md(first_screen_words(numbers, first, unit=unit)))
        with grid.expander("Which channel is which"):
            st.dataframe(most_active_rows(numbers, first), hide_index=True, width="content", height=240)
    grid.image(grid_for_screen(context.key, name, context.per_row, context.cmap, context.contrast, activation, only), width="content")
    st.download_button(
        "Download this grid at full resolution (PNG)", key=f"png_{name}", on_click="ignore", mime="image/png",
        file_name=f"{file_name(name)}.png", data=deferred_bundle(context, [name], pick=".png"),
    )


def show(context: Context) -> None:
    st.caption(
        "A **feature map** is what one layer of the network makes of the image. Each small picture below is one "
        "channel: the answer of one learned filter. Bright means the filter found its pattern there; a picture in one "
        "flat colour is blank: that filter found nothing."
    )
    if not context.selected:
        st.info("Choose one or more layers in the sidebar.")
        return
    order, plain = list(context.result.maps), layer_titles(list(context.stats.values()), table=context.opened.probe.table)
    for name in context.selected:
        layer_grid(context, name, title=plain[name], position=order.index(name) + 1, count=len(order))
    left, right = st.columns(2)
    left.download_button(
        "All grids and statistics (ZIP)", data=deferred_bundle(context, order),
        file_name="actviz_grids.zip", mime="application/zip", on_click="ignore", key="zip",
    )
    right.download_button(
        "Raw activations (NumPy .npz)", data=deferred_bundle(context, order, pick=".npz", npz=True),
        file_name="actviz_activations.npz", on_click="ignore", key="npz",
    )


show(context())
