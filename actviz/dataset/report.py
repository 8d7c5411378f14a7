"""What a data set summary writes: CSV tables, heat-map pictures and contact sheets, as
file name -> bytes (``output_files``), and the pictures themselves as uint8 arrays.

Every name that comes from a file (image paths, class names, layer names) goes through
``text.csv_cell`` before a CSV and ``text.file_name`` before a file name.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import ImageError
from ..draw.figures import overlay, picture_png
from ..draw.resample import enlarge
from ..text import csv_cell, file_name, unique_names
from .summary import Summary

#: Channels shown per layer on a contact sheet, unless chosen.
SHEET_CHANNELS = 16
#: Side of one image on a contact sheet, in pixels.
TILE = 96
#: Smallest crop around a receptive field, as a share of the image side (a 3-pixel field
#: of a first layer is shown with some of the image around it).
MIN_CROP = 0.25

TOP_COLUMNS = ["layer", "channel", "rank", "image", "value", "y", "x"]
PREDICTION_COLUMNS = ["image", "label", "predicted", "confidence"]
SKIPPED_COLUMNS = ["image", "reason"]


def csv_bytes(rows: Iterable[dict], columns: Sequence[str]) -> bytes:
    """Rows (dicts) as CSV bytes with the given header; text cells made safe for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([_cell(row.get(c, "")) for c in columns])
    return buffer.getvalue().encode("utf-8")


def top_image_rows(summary: Summary, layers: Sequence[str] | None = None) -> list[dict]:
    """``top_images.csv``: per layer, channel and rank (1 = strongest) the image, its maximum
    value and where in the layer's grid it was (y, x)."""
    rows = []
    for name in layers or summary.layout.names:
        top = summary.layers[name].top
        filled = top.filled()
        for channel in range(top.value.shape[1]):
            for rank in range(top.k):
                if filled[rank, channel]:
                    rows.append({
                        "layer": name, "channel": channel, "rank": rank + 1, "image": summary.image_name(int(top.image[rank, channel])),
                        "value": float(top.value[rank, channel]), "y": int(top.extra["y"][rank, channel]), "x": int(top.extra["x"][rank, channel]),
                    })
    return rows


def channel_columns(summary: Summary) -> list[str]:
    """The header of ``channels.csv``: with labels, a ``mean_<class>`` column per class and the selectivity."""
    columns = ["layer", "channel", "mean", "std", "active_fraction", "dead"]
    if summary.labelled:
        columns += [f"mean_{name}" for name in summary.layout.classes] + ["selectivity", "selective_for"]
    return columns


def channel_rows(summary: Summary, layers: Sequence[str] | None = None) -> list[dict]:
    """``channels.csv``: per layer and channel, the response's mean and spread across images,
    the share of images it is active on, whether it is dead, and (labelled) per-class means
    and selectivity (see ``summary``)."""
    rows = []
    classes = summary.layout.classes
    for name in layers or summary.layout.names:
        table = summary.channels(name)
        for c in range(len(table["mean"])):
            row = {"layer": name, "channel": c, "mean": table["mean"][c], "std": table["std"][c],
                   "active_fraction": table["active_fraction"][c], "dead": bool(table["dead"][c])}
            if summary.labelled:
                row.update({f"mean_{k}": table["class_mean"][i, c] for i, k in enumerate(classes)})
                favoured = int(table["selective_for"][c])
                row["selectivity"] = table["selectivity"][c]
                row["selective_for"] = classes[favoured] if favoured >= 0 and not table["dead"][c] else ""
            rows.append(row)
    return rows


def prediction_rows(summary: Summary) -> list[dict]:
    """``predictions.csv``: each image's label (empty without one), the model's answer and its confidence."""
    classes = summary.layout.classes
    return [
        {"image": summary.image_name(int(i)), "label": classes[l] if l >= 0 else "", "predicted": classes[p], "confidence": float(c)}
        for i, l, p, c in zip(summary.index, summary.label, summary.predicted, summary.confidence)
    ]


def skipped_rows(summary: Summary) -> list[dict]:
    """``skipped.csv``: files left out, and why."""
    return [{"image": path, "reason": reason} for _, path, reason in summary.skipped]


def heatmap_picture(heatmap: np.ndarray, base: np.ndarray | None = None, *, size: int = 224) -> np.ndarray:
    """A mean heat map for people: float (h, w) 0..1 -> uint8 (S, S', 3), stretched to its own
    maximum and drawn over ``base`` (uint8 (H, W, C), e.g. the class's average image), or on its
    own in the jet colours; at least ``size`` pixels on its short side."""
    heat = np.asarray(heatmap, np.float32)
    top = float(heat.max()) if heat.size else 0.0
    heat = heat / top if top > 0 else heat
    if base is None:
        base = np.full((*heat.shape, 3), 128, np.uint8)
        opacity = 1.0
    else:
        opacity = 0.5
    zoom = max(1, -(-size // min(base.shape[:2])))
    base = enlarge(base, zoom)
    return overlay(base, heat, opacity=opacity)


def sheet_channels(summary: Summary, layer: str, count: int = SHEET_CHANNELS) -> list[int]:
    """The channels a contact sheet shows by default: the most selective (labelled data) or
    the most active on average (unlabelled), dead channels last."""
    table = summary.channels(layer)
    score = table["selectivity"] if summary.labelled else table["mean"]
    score = np.where(np.isnan(score), -np.inf, score)
    order = np.lexsort((np.arange(len(score)), -score, table["dead"]))
    return [int(c) for c in order[:count]]


def crop_tile(pixels: np.ndarray, box: tuple[int, int, int, int], *, tile: int = TILE, min_crop: float = MIN_CROP) -> np.ndarray:
    """The part of an image around a receptive field, as a square tile with the field outlined.

    ``pixels``: uint8 (H, W, C); ``box``: (top, left, bottom, right) of the field. The crop is
    the field, widened to at least ``min_crop`` of the image's side; -> uint8 (tile, tile, 3).
    """
    from PIL import Image, ImageDraw

    height, width = pixels.shape[:2]
    top, left, bottom, right = box
    side = max(bottom - top, right - left, int(round(min_crop * min(height, width))), 1)
    side = min(side, max(height, width))
    cy, cx = (top + bottom) / 2, (left + right) / 2
    y0 = int(round(min(max(cy - side / 2, 0), max(height - side, 0))))
    x0 = int(round(min(max(cx - side / 2, 0), max(width - side, 0))))
    crop = np.ascontiguousarray(pixels[y0 : y0 + side, x0 : x0 + side])
    crop = np.repeat(crop, 3, axis=-1) if crop.shape[-1] == 1 else crop
    image = Image.fromarray(crop).resize((tile, tile), Image.Resampling.BICUBIC)
    scale_y, scale_x = tile / crop.shape[0], tile / crop.shape[1]
    if (bottom - top) < crop.shape[0] or (right - left) < crop.shape[1]:
        ImageDraw.Draw(image).rectangle(
            [(left - x0) * scale_x, (top - y0) * scale_y, (right - x0) * scale_x - 1, (bottom - y0) * scale_y - 1], outline=(255, 40, 40), width=2,
        )
    return np.asarray(image)


def sheet_tiles(
    summary: Summary, chosen: dict, pixels_of: Any, fields: dict, *, tile: int = TILE, progress: Any = None,
) -> dict[tuple, np.ndarray]:
    """The tiles of several contact sheets, each image read once: (layer, channel, rank) ->
    uint8 (tile, tile, 3).

    ``chosen``: layer -> channels; ``pixels_of(index)``: uint8 (H, W, C) image ``index`` as the
    model saw it, or None if it can no longer be read; ``fields``: layer -> ``ReceptiveField``.
    Each tile is the crop around the field of the position where the channel peaked, the field
    outlined in red. Memory: the tiles, not the images.
    """
    needed: dict[int, list] = {}
    for layer, channels in chosen.items():
        top = summary.layers[layer].top
        for channel in channels:
            for rank in np.nonzero(top.filled()[:, channel])[0]:
                box = fields[layer].box(int(top.extra["y"][rank, channel]), int(top.extra["x"][rank, channel]))
                needed.setdefault(int(top.image[rank, channel]), []).append((layer, int(channel), int(rank), box))
    tiles = {}
    for done, index in enumerate(sorted(needed), start=1):
        pixels = pixels_of(index)
        if pixels is not None:
            for layer, channel, rank, box in needed[index]:
                tiles[(layer, channel, rank)] = crop_tile(pixels, box, tile=tile)
        if progress is not None:
            progress(done, len(needed))
    return tiles


def contact_sheet(summary: Summary, layer: str, channels: Sequence[int], tiles: dict, *, tile: int = TILE) -> np.ndarray:
    """One layer's contact sheet: a row per channel (its number, how often it is active, its
    selectivity) with its top-k tiles (from ``sheet_tiles``), strongest first: uint8 (rows, columns, 3)."""
    from PIL import Image, ImageDraw, ImageFont

    k = summary.layout.top_k
    table = summary.channels(layer)
    gap, label_width, header = 4, 150, 24
    canvas = Image.new("RGB", (label_width + k * (tile + gap), header + max(len(channels), 1) * (tile + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    draw.text((4, 4), f"{layer}: the {k} images that excite each channel most (red: where it peaked)", fill="black", font=font)
    for row, channel in enumerate(channels):
        y = header + row * (tile + gap)
        draw.text((4, y + 4), f"channel {channel}", fill="black", font=font)
        for line, text in enumerate(_channel_words(summary, table, channel)):
            draw.text((4, y + 22 + 16 * line), text, fill="#555555", font=font)
        for rank in range(k):
            if (layer, channel, rank) in tiles:
                canvas.paste(Image.fromarray(tiles[(layer, channel, rank)]), (label_width + rank * (tile + gap), y))
    return np.asarray(canvas)


def build_sheets(
    summary: Summary, source: Any, probe: Any, *, channels: Sequence[int] | None = None, count: int = SHEET_CHANNELS,
    tile: int = TILE, progress: Any = None,
) -> dict[str, np.ndarray]:
    """Contact sheets of every layer of the summary: layer -> uint8 image. ``channels``: the same
    channel numbers on every layer (those a layer has), default ``sheet_channels``."""
    from .receptive import receptive_field

    shape = summary.layout.image_shape
    chosen = {}
    for layer in summary.layout.names:
        width = summary.layout.shape(layer)[-1]
        chosen[layer] = [c for c in channels if 0 <= c < width] if channels else sheet_channels(summary, layer, count)
    fields = {layer: receptive_field(probe, layer, shape[:2]) for layer in chosen}

    def pixels_of(index: int):
        try:
            return source.pixels(index, shape)
        except ImageError:  # a file gone or changed since the pass: its tile stays blank
            return None

    tiles = sheet_tiles(summary, chosen, pixels_of, fields, tile=tile, progress=progress)
    return {layer: contact_sheet(summary, layer, picked, tiles, tile=tile) for layer, picked in chosen.items()}


def output_files(summary: Summary, *, sheets: dict | None = None) -> dict[str, bytes]:
    """Everything the ``dataset`` command writes, as file name -> bytes: ``summary.npz``,
    ``top_images.csv``, ``channels.csv``, ``predictions.csv``, ``skipped.csv``, with Grad-CAM
    ``heatmaps/<class>.npy`` and ``.png`` (and ``heatmaps/cells/<true>__as__<predicted>.npy``
    for each kind of answer), and the contact sheets passed in ``sheets`` (layer -> uint8 image)
    as ``sheets/<number>_<layer>.png``."""
    files = {
        "summary.npz": summary.to_bytes(),
        "top_images.csv": csv_bytes(top_image_rows(summary), TOP_COLUMNS),
        "channels.csv": csv_bytes(channel_rows(summary), channel_columns(summary)),
        "predictions.csv": csv_bytes(prediction_rows(summary), PREDICTION_COLUMNS),
        "skipped.csv": csv_bytes(skipped_rows(summary), SKIPPED_COLUMNS),
    }
    classes = summary.layout.classes
    stems = dict(zip(classes, unique_names([file_name(c) for c in classes])))
    averages = summary.mean_images()
    for name, (heat, _) in summary.mean_heatmaps().items():
        files[f"heatmaps/{stems[name]}.npy"] = _npy(heat)
        files[f"heatmaps/{stems[name]}.png"] = picture_png(heatmap_picture(heat, averages.get(name)))
    for (true, predicted), (heat, _) in summary.cell_heatmaps().items():
        files[f"heatmaps/cells/{stems[classes[true]]}__as__{stems[classes[predicted]]}.npy"] = _npy(heat)
    for layer, picture in (sheets or {}).items():
        index = summary.layout.names.index(layer)
        files[f"sheets/{index:03d}_{file_name(layer)}.png"] = picture_png(picture)
    return files


def _channel_words(summary: Summary, table: dict, channel: int) -> list[str]:
    if table["dead"][channel]:
        return ["dead (never varies)"]
    lines = [f"active on {table['active_fraction'][channel]:.0%}"]
    if summary.labelled and not np.isnan(table["selectivity"][channel]):
        favoured = summary.layout.classes[int(table["selective_for"][channel])]
        lines.append(f"selectivity {table['selectivity'][channel]:.2f}")
        lines.append(f"most for {favoured[:16]}")
    return lines


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, np.float32))
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{float(value):.6g}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return csv_cell(value)
