"""What each screen of the dashboard's "Across a data set" view shows, ready to draw: tables as
lists of dicts, pictures as uint8 RGB arrays, captions in plain words. Nothing here imports
Streamlit; ``app.py`` only wires widgets to these calls.

A few of these run the model again on a handful of images (the top images of one channel, the
most confident mistakes): one batched forward pass (and one backward pass for heat maps) over
at most k images, never over the data set.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ChannelNotFoundError, ImageError
from ..draw.figures import overlay
from ..draw.resample import enlarge
from ..inputs.preprocessing import preprocess
from ..draw.rounding import for_people
from .report import crop_tile, heatmap_picture
from .sources import Source, open_source
from .summary import Summary

#: What each screen shows, in words for someone who has never trained a network.
CAPTIONS = {
    "overview": (
        "The model was run once over every image of the data set. Nothing below looks at one image only: "
        "each number and picture sums up all of them."
    ),
    "channels": (
        "Each channel (filter) of a layer responds to some pattern. 'Tells classes apart' (its selectivity) says how "
        "much the channel's response depends on the class of the image: 0 means it responds the same to every class, "
        "1 means its response alone tells the classes apart. 'Most for' is the class it responds to most, compared with "
        "the others. 'Responds on': the share of images on which the channel responds at all."
    ),
    "top_images": (
        "The images from the data set that make this channel respond most, strongest first. The coloured picture "
        "shows where on each image the channel responds (bright: strong, on one scale for all of them); the crop "
        "shows the part of the image the channel can see around its strongest point (its receptive field, in red)."
    ),
    "heatmaps": (
        "Where the model looks, on average, when it answers: the Grad-CAM heat maps of all images of a class, "
        "averaged, over the class's average image. Bright areas are where the evidence for its answers usually lies. "
        "If they fall outside the object (on a text marker, a border, a ruler), the model may have learned a shortcut."
    ),
    "confusion": (
        "How often the model gives each answer for the images of each true class. The diagonal counts the right "
        "answers; every other cell is one kind of mistake."
    ),
    "mistakes": (
        "The images the model got wrong while being most sure of itself. The heat map shows what it looked at when "
        "it gave its wrong answer. Such images are often mislabelled, unusual, or show what the model really learned."
    ),
    "dead": (
        "A dead channel gives the same value on every image of the data set (usually zero): it never responds, so "
        "it takes part in no decision. A few are normal; many in one layer suggest a problem in training."
    ),
}


def cache_key(opened: Any, source: Source, **settings: Any) -> str:
    """A key for caching a summary across sessions: the model file's digest, the data set's
    fingerprint (paths, labels, file sizes and times) and the settings passed to ``summarize``."""
    import hashlib
    import json

    text = json.dumps([opened.loaded.digest, source.fingerprint, sorted((k, repr(v)) for k, v in settings.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def spread_subset(count: int, limit: int) -> tuple[np.ndarray | None, str]:
    """At most ``limit`` of ``count`` images, spread evenly over the data set (so every class
    folder keeps its share), and a note in words; (None, "") when all of them fit.

    >>> spread_subset(10, 4)[0].tolist()
    [0, 3, 6, 9]
    """
    if count <= limit:
        return None, ""
    chosen = np.unique(np.round(np.linspace(0, count - 1, limit)).astype(np.int64))
    return chosen, (f"The data set has {count:,} images; this server summarises at most {limit:,} at a time, so "
                    f"{len(chosen):,} of them, spread evenly over the data set, were used.")


def matching_source(summary: Summary, candidates: Sequence[Source]) -> Source | None:
    """The candidate data set a summary was made from (same files, labels, sizes and times), or
    None. Only data sets the caller offers are considered: a summary file never makes actviz
    open a location named inside it (it may come from a stranger)."""
    wanted = summary.meta.get("fingerprint")
    return next((source for source in candidates if wanted and source.fingerprint == wanted), None)


def overview(summary: Summary) -> dict:
    """The headline numbers: images, skipped files, classes, accuracy, and a paragraph in words."""
    accuracy = summary.accuracy()
    skipped = len(summary.skipped)
    words = [f"{summary.count:,} images were summarised"]
    if skipped:
        words[0] += f" ({skipped:,} file{'s' if skipped != 1 else ''} could not be read and {'were' if skipped != 1 else 'was'} left out)"
    if accuracy is not None:
        labelled = int((summary.label >= 0).sum())
        words.append(f"The model answered {accuracy:.1%} of the {labelled:,} labelled images right")
    else:
        words.append("The images have no labels, so there is no accuracy; results are grouped by the model's answers")
    dead = sum(int(summary.channels(name)["dead"].sum()) for name in summary.layout.names)
    total = sum(shape[-1] for _, shape in summary.layout.layers)
    words.append(f"{dead:,} of the {total:,} channels in the {len(summary.layout.names)} layers summarised are dead")
    return {
        "images": summary.count, "skipped": skipped, "classes": list(summary.layout.classes), "labelled": summary.labelled,
        "accuracy": accuracy, "layers": summary.layout.names, "gradcam": summary.layout.cam_layer is not None,
        "cam_layer": summary.layout.cam_layer, "model": summary.meta.get("model", ""), "data": summary.meta.get("data", ""),
        "notes": list(summary.meta.get("notes", [])), "text": ". ".join(words) + ".",
    }


def channel_ranking(summary: Summary, layer: str, *, order: str = "selectivity", limit: int | None = None) -> list[dict]:
    """The channels of one layer as table rows, ranked: ``order`` "selectivity" (labelled data),
    "activity" (mean response), "active" (share of images it is active on) or "channel".

    Keys: channel, selectivity (None without labels), selective_for (class name), mean, std,
    active_fraction, peak (highest value on any image), dead.
    """
    table = summary.channels(layer)
    classes = summary.layout.classes
    keys = {"selectivity": table["selectivity"], "activity": table["mean"], "active": table["active_fraction"],
            "channel": -np.arange(len(table["mean"]), dtype=np.float64)}
    if order not in keys:
        raise ValueError(f"order must be one of {sorted(keys)}")
    score = np.where(np.isnan(keys[order]), -np.inf, keys[order])
    ranked = np.lexsort((np.arange(len(score)), -score, table["dead"]))
    rows = []
    for c in ranked[:limit]:
        favoured = int(table["selective_for"][c])
        rows.append({
            "channel": int(c), "selectivity": None if np.isnan(table["selectivity"][c]) else float(table["selectivity"][c]),
            "selective_for": classes[favoured] if favoured >= 0 and not table["dead"][c] else "",
            "mean": float(table["mean"][c]), "std": float(table["std"][c]), "active_fraction": float(table["active_fraction"][c]),
            "peak": float(table["high"][c]), "dead": bool(table["dead"][c]),
        })
    return rows


def top_images(summary: Summary, source: Source, layer: str, channel: int, *, probe: Any, size: int = 192) -> list[dict]:
    """The top-k images of one channel, each with where the channel responds on it.

    One forward pass over the k images. Each dict: rank, image (path), value (the stored peak),
    y, x (in the layer's grid), label, predicted, confidence, picture (uint8 (S, S, 3), the image
    as the model saw it, the receptive field of the peak outlined), activation (uint8: the
    channel's map over the image, on one scale for the k images: 0 to the strongest peak),
    crop (uint8 (size, size, 3): the receptive field and some context), box (top, left, bottom,
    right in model-input pixels) and caption (words). Images that can no longer be read are left out.
    """
    from .receptive import receptive_field

    part = summary.layers[layer]
    if not 0 <= channel < part.top.value.shape[1]:
        raise ChannelNotFoundError(f"Channel {channel} does not exist: {layer} has channels 0 to {part.top.value.shape[1] - 1}.")
    shape = summary.layout.image_shape
    field = receptive_field(probe, layer, shape[:2])
    entries = []
    for rank in np.nonzero(part.top.filled()[:, channel])[0]:
        index = int(part.top.image[rank, channel])
        try:
            entries.append((int(rank), index, source.pixels(index, shape)))
        except ImageError:
            continue
    if not entries:
        return []
    pixels = np.stack([p for _, _, p in entries])
    maps = probe.run(preprocess(pixels, summary.meta.get("preprocessing", "rescale")), [layer]).maps[probe.layer(layer).name][..., channel]
    scale = float(part.top.value[0, channel]) if part.top.value[0, channel] > 0 else float(maps.max() or 1.0)
    zoom = max(1, -(-size // min(shape[:2])))
    rows = []
    for (rank, index, image), values in zip(entries, maps):
        y, x = int(part.top.extra["y"][rank, channel]), int(part.top.extra["x"][rank, channel])
        box = field.box(y, x)
        label, predicted, confidence = _answer(summary, index)
        rows.append({
            "rank": rank + 1, "image": summary.image_name(index), "value": float(part.top.value[rank, channel]), "y": y, "x": x,
            "label": label, "predicted": predicted, "confidence": confidence,
            "picture": _outlined(image, box, zoom), "activation": overlay(_enlarged(image, zoom), np.clip(values / scale, 0, 1), opacity=0.6),
            "crop": crop_tile(image, box, tile=size), "box": box,
            "caption": f"#{rank + 1}: {summary.image_name(index)}, peak {for_people(part.top.value[rank, channel])} at row {y}, column {x}"
                       + (f" (a {label})" if label else ""),
        })
    return rows


def top_strip(summary: Summary, source: Source, layer: str, channel: int, *, probe: Any, count: int = 4, size: int = 96) -> np.ndarray | None:
    """The crops around the peaks of a channel's ``count`` strongest images, side by side (uint8
    RGB), to show beside a picture made to excite the channel; None when none can be read."""
    from ..draw.figures import tile_images

    tops = top_images(summary, source, layer, channel, probe=probe, size=size)[:count]
    return tile_images(np.stack([entry["crop"] for entry in tops]), per_row=count) if tops else None


def class_heatmaps(summary: Summary, *, size: int = 224) -> list[dict]:
    """Per class, the mean Grad-CAM heat map over the class's average image. Each dict: class,
    images, heatmap (float32 (h, w), 0..1), picture (uint8 RGB), caption. Empty without Grad-CAM."""
    averages = summary.mean_images()
    how = "true class" if summary.labelled else "answer"
    return [
        {"class": name, "images": count, "heatmap": heat, "picture": heatmap_picture(heat, averages.get(name), size=size),
         "caption": f"{name}: {count:,} image{'s' if count != 1 else ''} (by {how}), strongest spot {heat.max():.0%} of the maximum on average"}
        for name, (heat, count) in summary.mean_heatmaps().items()
    ]


def cell_heatmaps(summary: Summary, *, size: int = 160, mistakes_only: bool = True) -> list[dict]:
    """Per (true class, answer) cell with images, its mean heat map, the most frequent first.
    Each dict: true, predicted, images, correct, heatmap (float32 (h, w)), picture (uint8 RGB), caption."""
    classes = summary.layout.classes
    averages = summary.mean_images()
    rows = [
        {"true": classes[i], "predicted": classes[j], "images": count, "correct": i == j, "heatmap": heat,
         "picture": heatmap_picture(heat, averages.get(classes[i]), size=size),
         "caption": f"{classes[i]} answered as {classes[j]}: {count:,} image{'s' if count != 1 else ''}"}
        for (i, j), (heat, count) in summary.cell_heatmaps().items() if not (mistakes_only and i == j)
    ]
    return sorted(rows, key=lambda r: (-r["images"], r["true"], r["predicted"]))


def confusion_rows(summary: Summary) -> list[dict]:
    """The confusion matrix as table rows: "true class", then one column per answer (counts),
    "images" and "right" (share answered right). Empty without labels."""
    if not summary.labelled:
        return []
    matrix = summary.confusion()
    classes = summary.layout.classes
    rows = []
    for i, name in enumerate(classes):
        total = int(matrix[i].sum())
        if total:
            rows.append({"true class": name, **{answer: int(matrix[i, j]) for j, answer in enumerate(classes)},
                         "images": total, "right": float(matrix[i, i] / total)})
    return rows


def mistakes(summary: Summary, source: Source, *, probe: Any, limit: int = 12, heatmaps: bool = True, size: int = 160) -> list[dict]:
    """The most confident mistakes, each with what the model looked at for its wrong answer.

    One forward and backward pass (Grad-CAM of the answer at the summary's heat-map layer, or
    the last convolution) over at most ``limit`` images. Each dict: image, label, predicted,
    confidence, picture (uint8 RGB), overlay (uint8 RGB, the heat map over it; None without
    ``heatmaps``), caption.
    """
    from ..explainers.explain import explain

    classes = summary.layout.classes
    top = summary.mistakes
    entries = []
    for slot in np.nonzero(top.filled()[:, 0])[0][:limit]:
        index = int(top.image[slot, 0])
        try:
            entries.append((index, int(top.extra["label"][slot, 0]), int(top.extra["predicted"][slot, 0]), float(top.value[slot, 0]),
                            source.pixels(index, summary.layout.image_shape)))
        except ImageError:
            continue
    if not entries:
        return []
    pixels = np.stack([e[4] for e in entries])
    zoom = max(1, -(-size // min(pixels.shape[1:3])))
    cams = None
    if heatmaps:
        batch = preprocess(pixels, summary.meta.get("preprocessing", "rescale"))
        cams = explain(probe, batch, method="gradcam", layer=summary.layout.cam_layer, class_index=[e[2] for e in entries]).heatmap
    return [
        {"image": summary.image_name(index), "label": classes[label], "predicted": classes[answer], "confidence": confidence,
         "picture": _enlarged(image, zoom), "overlay": None if cams is None else overlay(_enlarged(image, zoom), cams[n]),
         "caption": f"{summary.image_name(index)}: a {classes[label]}, answered {classes[answer]} ({confidence:.0%} sure)"}
        for n, (index, label, answer, confidence, image) in enumerate(entries)
    ]


def dead_channels(summary: Summary) -> list[dict]:
    """Per layer: layer, channels, dead (count), share, list (the dead channel numbers, as text)."""
    rows = []
    for name, shape in summary.layout.layers:
        dead = np.nonzero(summary.channels(name)["dead"])[0]
        rows.append({"layer": name, "channels": int(shape[-1]), "dead": len(dead), "share": len(dead) / shape[-1],
                     "list": ", ".join(str(int(c)) for c in dead)})
    return rows


def summary_source(summary: Summary, images: str | None) -> tuple[Source | None, str]:
    """The images to draw a saved summary's pictures from on the command line, or None and why, in words.

    Only ``images`` (a folder, list or ZIP the person running actviz names; "demo" for the demo
    digits) is opened, or the bundled demo digits when the summary says it was made from them
    and ``images`` is None. The location written inside a summary is never opened (the file may
    come from a stranger): it is only named in the words, for the person to give it again. The
    images are used only when their fingerprint (paths, labels, file sizes and times) is the
    summary's, so the pictures are those of the images the summary was made from.
    """
    import shlex

    spec = summary.meta.get("source") or {}
    if images is None and spec.get("kind") != "demo":
        location = spec.get("location") or ""
        if location and location != "uploaded ZIP":
            return None, (f"the contact sheets need the images this summary was made from ({location}); they are not read from "
                          f"a location written in the file: to draw them, add --images {shlex.quote(location)}")
        return None, "the contact sheets need the images this summary was made from: to draw them, add --images with them"
    labels = "folders" if summary.meta.get("labelled", True) else "none"
    offered = open_source(None if images in (None, "demo") else images, labels=labels)
    found = matching_source(summary, [offered])
    if found is None:
        return None, (f"the images given ({offered.describe().rstrip('.')}) are not the ones this summary was made from "
                      "(other files, labels, sizes or times), so no contact sheets are drawn")
    return found, ""


def _answer(summary: Summary, index: int) -> tuple[str, str, float | None]:
    at = int(np.searchsorted(summary.index, index))
    if at >= len(summary.index) or summary.index[at] != index:
        return "", "", None
    classes = summary.layout.classes
    label = int(summary.label[at])
    return (classes[label] if label >= 0 else ""), classes[int(summary.predicted[at])], float(summary.confidence[at])


def _enlarged(image: np.ndarray, zoom: int) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (H*zoom, W*zoom, 3), nearest neighbour (small digits stay sharp)."""
    big = enlarge(image, zoom)
    return np.repeat(big, 3, axis=-1) if big.shape[-1] == 1 else big


def _outlined(image: np.ndarray, box: tuple, zoom: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    picture = Image.fromarray(np.ascontiguousarray(_enlarged(image, zoom)))
    top, left, bottom, right = box
    ImageDraw.Draw(picture).rectangle([left * zoom, top * zoom, right * zoom - 1, bottom * zoom - 1], outline=(255, 40, 40), width=2)
    return np.asarray(picture)
