"""Pictures for what a grid cannot show: one channel large with a colour bar (numpy and Pillow,
a few milliseconds), and a chart across the depth of the network (matplotlib, Agg backend)."""

from __future__ import annotations

import io

import numpy as np

from .stats import LayerStats


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

    from .render import palette

    values = np.asarray(channel, dtype=np.float32)
    low, high = value_range if value_range is not None else (float(values.min()), float(values.max()))
    span = high - low
    levels = np.zeros(values.shape, np.uint8) if span <= 0 else (np.clip((values - low) * (254.0 / span), 0, 254) + 0.5).astype(np.uint8)
    zoom = max(1, size // max(values.shape))
    picture = palette(cmap)[np.repeat(np.repeat(levels, zoom, axis=0), zoom, axis=1)]
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
        draw.text((width + 38, y), f"{low + fraction * span:.3g}", fill="black", font=font, anchor="lm")
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
