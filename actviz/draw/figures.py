"""Pictures for people: one channel large with a colour bar (numpy and Pillow, a few
milliseconds), a chart across the depth of the network (matplotlib, Agg backend), a heat map
or one channel over an image, and small images tiled in rows. Arrays in, uint8 arrays or PNG bytes out."""

from __future__ import annotations

import io

import numpy as np

from .resample import enlarge, resize_centred
from .rounding import for_people
from .stats import LayerStats


def picture_png(pixels: np.ndarray, *, compress_level: int = 1) -> bytes:
    """uint8 (H, W), (H, W, 1) or (H, W, 3) -> PNG bytes (grey or RGB)."""
    from PIL import Image

    array = np.asarray(pixels, dtype=np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def channel_picture(
    channel: np.ndarray, *, cmap: str = "viridis", size: int = 448, title: str = "",
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """One channel, large, with a labelled colour bar: float (H, W) -> uint8 RGB image.

    Like the notebook's ``plt.matshow(activation[0, :, :, 10], cmap='viridis')``:
    colours span the channel's own minimum to maximum (or ``value_range``, to put
    two pictures on one scale); each activation is a block of pixels (nearest
    neighbour), so nothing is smoothed away.
    """
    from PIL import Image, ImageDraw, ImageFont

    from .grids import palette

    values = np.asarray(channel, dtype=np.float32)
    low, high = value_range if value_range is not None else (float(values.min()), float(values.max()))
    span = high - low
    levels = np.zeros(values.shape, np.uint8) if span <= 0 else (np.clip((values - low) * (254.0 / span), 0, 254) + 0.5).astype(np.uint8)
    zoom = max(1, size // max(values.shape))
    picture = palette(cmap)[enlarge(levels, zoom)]
    height, width = picture.shape[:2]
    font = ImageFont.load_default(size=14)
    top = 24 if title else 6
    canvas = Image.new("RGB", (width + 110, height + top + 6), "white")
    canvas.paste(Image.fromarray(picture), (0, top))
    bar = palette(cmap)[np.linspace(254, 0, height).astype(np.uint8)][:, None, :].repeat(18, axis=1)
    canvas.paste(Image.fromarray(np.ascontiguousarray(bar)), (width + 12, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((0, 2), title, fill="black", font=font)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + round((height - 1) * (1 - fraction))
        draw.line([(width + 30, y), (width + 35, y)], fill="black")
        draw.text((width + 38, y), for_people(low + fraction * span), fill="black", font=font, anchor="lm")
    return np.asarray(canvas)


def depth_chart(stats: list[LayerStats]) -> bytes:
    """Sparsity (share of zero values) and blank channels (%) per layer, in network order: PNG bytes."""
    from matplotlib.figure import Figure

    names = [s.name for s in stats]
    x = np.arange(len(stats))
    figure = Figure(figsize=(max(6.0, 0.45 * len(stats) + 2), 3.8))
    axes = figure.subplots()
    axes.plot(x, [100 * s.sparsity for s in stats], marker="o", color="#3b528b", label="zero values (sparsity)")
    axes.bar(x, [100 * s.blank_fraction for s in stats], color="#fde725", edgecolor="#5ec962", alpha=0.8, label="blank channels")
    axes.set_ylim(0, 100)
    axes.set_ylabel("% of the layer")
    axes.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    axes.set_xlabel("layer, from the input (left) to the output (right)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)
    return _png(figure)


def overlay(pixels: np.ndarray, heatmap: np.ndarray, *, opacity: float = 0.45, cmap: str = "jet", by_value: bool = False) -> np.ndarray:
    """The heatmap over the image: uint8 (H, W, 1|3) + float (h, w) in 0..1 -> uint8 (H, W, 3).

    The map is resized with its cells' centres over the middle of the image blocks they stand
    for (``resample.resize_centred``). ``by_value``: each pixel's opacity is ``opacity`` times
    the map there, so the image shows plainly where the map is 0.
    """
    from .grids import palette

    base = np.asarray(pixels, dtype=np.float32)
    if base.shape[-1] == 1:
        base = np.repeat(base, 3, axis=-1)
    heat = resize_centred(heatmap, base.shape[:2]).clip(0, 1)
    levels = (heat * 255 + 0.5).astype(np.uint8)
    colours = palette(cmap, separator=tuple(int(v) for v in _top_colour(cmap)))[levels].astype(np.float32)
    alpha = (opacity * heat.astype(np.float32))[:, :, None] if by_value else opacity
    return (base * (1 - alpha) + colours * alpha + 0.5).clip(0, 255).astype(np.uint8)


def channel_overlay(pixels: np.ndarray, channel: np.ndarray, *, cmap: str = "viridis", opacity: float = 0.8, size: int = 448) -> np.ndarray:
    """One channel laid over the image, to see where on it the filter responds: uint8 (H, W, 1|3)
    + float (h, w) -> uint8 (H*z, W*z, 3), z the whole factor that brings the image's longer side
    to about ``size`` pixels (at least 1; each pixel a block, as in ``channel_picture``).

    The channel is stretched from its lowest value (the image shows plainly) to its highest (the
    colour map's top colour at ``opacity``); a flat channel leaves the image as it is.
    """
    values = np.asarray(channel, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    heat = np.zeros(values.shape, np.float32) if high <= low else (values - low) / (high - low)
    picture = overlay(pixels, heat, opacity=opacity, cmap=cmap, by_value=True)
    return enlarge(picture, max(1, size // max(picture.shape[:2])))


def _top_colour(cmap: str) -> np.ndarray:
    import matplotlib

    return (np.asarray(matplotlib.colormaps[cmap](1.0)[:3]) * 255 + 0.5).astype(np.uint8)


def tile_images(images: np.ndarray, *, per_row: int = 8, gap: int = 2, zoom: int = 1) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images in rows, white between: -> uint8 (rows*(H+gap)-gap, cols*(W+gap)-gap, 3)."""
    from .grids import tile

    if zoom > 1:
        images = enlarge(images, zoom, axes=(1, 2))
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    planes = [tile(np.moveaxis(images[..., k], 0, -1), per_row=per_row, gap=gap, fill=255) for k in range(3)]
    return np.stack(planes, axis=-1)


def screen_image(pixels: np.ndarray) -> np.ndarray:
    """An image as the model sees it, ready for a screen: uint8 (H, W, 1) -> (H, W) grey; (H, W, 3) as it is."""
    return pixels[:, :, 0] if pixels.shape[-1] == 1 else pixels
