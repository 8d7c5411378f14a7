"""Feature maps: one grid per layer chosen in the sidebar, each with its full-resolution PNG, and all
of them as a ZIP or the raw activations as .npz (computed when clicked)."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from actviz.draw.export import export_bundle, zip_bytes
from actviz.draw.grids import feature_grid, png_bytes
from actviz.draw.stats import layer_caption
from actviz.text import file_name
from views.common import DISPLAY_WIDTH, Context, context, md, shown


def grid_for_screen(key: tuple, layer: str, per_row: int, cmap: str, contrast: str, activation) -> bytes:
    """A layer's grid sized for a screen, as PNG bytes (palette PNG: small and quick);
    ``activation``: float32 (H, W, C), the layer's maps for the image."""
    return shown(("grid", key, layer, per_row, cmap, contrast), lambda: png_bytes(
        feature_grid(activation, per_row=per_row, cmap=cmap, contrast=contrast, display_width=DISPLAY_WIDTH)))


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


def show(context: Context) -> None:
    st.caption(
        "A **feature map** is what one layer of the network makes of the image. Each small picture below is one "
        "channel: the answer of one learned filter. Bright means the filter found its pattern there; a picture in one "
        "flat colour is blank: that filter found nothing."
    )
    if not context.selected:
        st.info("Choose one or more layers in the sidebar.")
        return
    order = list(context.result.maps)
    for name in context.selected:
        info = context.opened.probe.layer(name)
        numbers = context.stats[name]
        height, width, channels = numbers.shape
        st.markdown(f"##### {md(name)} · {md(info.type)} · {height} x {width} x {channels} · {len(numbers.blank)} of {channels} channels blank")
        st.caption(layer_caption(order.index(name), len(order), numbers))
        st.image(grid_for_screen(context.key, name, context.per_row, context.cmap, context.contrast, context.result.maps[name][0]),
                 width="content")
        st.download_button(
            "Download this grid at full resolution (PNG)", key=f"png_{name}", on_click="ignore", mime="image/png",
            file_name=f"{file_name(name)}.png", data=deferred_bundle(context, [name], pick=".png"),
        )
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
