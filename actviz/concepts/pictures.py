"""Pictures of concepts for people (arrays in, uint8 RGB arrays or PNG bytes out): a concept's most
typical crops as a sheet ("what it is"), its mean map over an image ("where it is"), a finding's
region drawn on a typical image, and TCAV's scores as a chart."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .crops import crop_pixels

#: Side of one crop on a sheet, in pixels.
TILE = 96
#: Crops on one row of a sheet.
PER_ROW = 8
#: Pictures of whole images are enlarged to at least this many pixels on their short side.
LEAST_SIDE = 224


def crop_sheet(crops: Sequence[np.ndarray], *, tile: int = TILE, per_row: int = PER_ROW) -> np.ndarray:
    """Crops uint8 (h, w, C) each, each in a grey frame, tiled in rows as even as ``per_row`` allows
    (9 crops: 5 and 4, not 8 and 1) on white: -> uint8 RGB. The frame keeps a bright patch at a
    crop's edge (a text marker in a corner) from melting into the white between the crops."""
    from ..draw.figures import tile_images

    if not len(crops):
        return np.full((tile, tile, 3), 255, np.uint8)
    tiles = np.stack([_framed(_rgb(crop_pixels(c, (0, 0, c.shape[1], c.shape[0]), (tile, tile)))) for c in crops])
    rows = -(-len(tiles) // per_row)
    return tile_images(tiles, per_row=-(-len(tiles) // rows), gap=4)


def _framed(tile: np.ndarray, *, width: int = 2, grey: int = 128) -> np.ndarray:
    """uint8 (h, w, 3) -> (h + 2 width, w + 2 width, 3): the tile inside a grey frame."""
    return np.pad(tile, ((width, width), (width, width), (0, 0)), constant_values=grey)


def map_picture(mean_map: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """A concept's mean map float (H, W) >= 0 over ``base`` uint8 (H, W, C) (e.g. a typical image),
    stretched to its own maximum, jet colours: -> uint8 (S, S', 3), at least ``LEAST_SIDE`` high."""
    from ..draw.figures import overlay

    heat = np.asarray(mean_map, np.float32)
    top = float(heat.max()) if heat.size else 0.0
    heat = heat / top if top > 0 else heat
    if base is None:
        base, opacity = np.full((*heat.shape, 3), 128, np.uint8), 1.0
    else:
        opacity = 0.5
    zoom = max(1, -(-LEAST_SIDE // min(base.shape[:2])))
    return overlay(_enlarge(base, zoom), heat, opacity=opacity)  # overlay resizes the map smoothly


def region_picture(pixels: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """An image uint8 (H, W, C) with ``box`` [x0, y0, x1, y1] outlined in red: -> uint8 (zH, zW, 3),
    enlarged by a whole factor z to at least ``LEAST_SIDE`` pixels high."""
    from PIL import Image, ImageDraw

    zoom = max(1, -(-LEAST_SIDE // min(pixels.shape[:2])))
    image = Image.fromarray(_enlarge(_rgb(pixels), zoom))
    x0, y0, x1, y1 = (int(v) * zoom for v in box)
    width = max(2, zoom // 2)
    ImageDraw.Draw(image).rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=(255, 40, 40), width=width)
    return np.asarray(image)


def tcav_chart(scores: Sequence[float], random_scores: Sequence[float], *, title: str) -> bytes:
    """TCAV scores of each run for the concept and for random directions, side by side, as PNG bytes."""
    import io

    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 3.4))
    axes = figure.subplots()
    rng = np.random.default_rng(0)  # a little horizontal spread so equal scores stay visible
    for x, values, colour in ((0, scores, "#d62728"), (1, random_scores, "#7f7f7f")):
        values = np.asarray(values, float)
        axes.scatter(x + rng.uniform(-0.08, 0.08, len(values)), values, color=colour, alpha=0.8)
        if len(values):
            axes.hlines(values.mean(), x - 0.25, x + 0.25, color=colour, linewidth=2)
    axes.set_xticks([0, 1], ["the concept", "random directions"])
    axes.set_ylim(-0.05, 1.05)
    axes.set_xlim(-0.6, 1.6)
    axes.set_ylabel("share of the class's images\nwhose score rises along it")
    axes.set_title(title, fontsize=9, wrap=True)
    axes.grid(axis="y", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _rgb(pixels: np.ndarray) -> np.ndarray:
    array = np.asarray(pixels, np.uint8)
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def _enlarge(array: np.ndarray, zoom: int) -> np.ndarray:
    return np.repeat(np.repeat(array, zoom, axis=0), zoom, axis=1) if zoom > 1 else array
