"""Concept discovery for one class over a data set (after CRAFT, Fel et al., CVPR 2023): the one
call that plans the passes, runs them, factorises, and puts the result together.

1. *The class's images*: those labelled with the class; in a data set without labels, those the
   model answers it for (an ``Answers`` pass over every image first).
2. *Crops*: ``crops_per_image`` crops of each of a sample of the class's images (seeded, so the
   sample does not depend on batches), at most ``max_crops`` crops in all (default
   ``MAX_CROPS``), through the layer. The cap bounds the pass that dominates the time to the
   first concept (each crop is a whole forward pass: VGG16 at 300 x 300 ran 3 to 7 crops a
   second on two shared cores, so 1,024 crops take 2.5 to 5 minutes) and the factorisation's
   memory (1,024 x 512 channels: 2 MB); 1,024 rows are already ~100 times the number of concepts,
   plenty for NMF to find directions that many crops share.
3. *Factorise* (``factorise``): the crops' activations into K concepts.
4. *Read* (``Readings``): every image of the class, and, with ``mistakes`` in a labelled data
   set, every other labelled image (to find those the model wrongly answers as the class), read
   in the concepts: maps, peaks, and the class score with each concept removed (``importance``).
5. *Put together*: concepts sorted by importance, their crops, mean maps, and the findings of the
   shortcut finder (``shortcuts``).

Memory is bounded by a batch of images and one chunk of model inputs, the crops kept (capped)
and, per image read, a few numbers per concept (its fall, its peak's strength and place); the
mean maps are running sums. Progress is ``progress(done, total)`` in model inputs over all the
passes; ``False`` stops with ``Cancelled``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from ..dataset.plan import DEFAULT_SIZE
from ..dataset.sources import DatasetError, Source, open_source
from ..errors import ChoiceError, ImageError
from ..inputs.preprocessing import choose_preprocessing
from .classes import choose_class
from .collect import Progress, Runner, Stages, ray_session, run_pass
from .crops import CROP_SIDES, CROPS_PER_IMAGE, crop_boxes
from .factorise import POSITIVE_PART_NOTE, Factors, factorise
from .importance import random_directions
from .layer import forward_chunk, head_chunk, layer_name, map_shape
from .maps import to_pixels
from .passes import FALSE_ALARM, RIGHT, Answers, Crops, Readings
from .result import Concept, Concepts, Crop
from .shortcuts import Evidence, find_shortcuts, relies

#: Crops factorised at most (see the module).
MAX_CROPS = 1024
#: Most typical crops kept per concept (one per image).
EXAMPLES = 9


def discover_concepts(
    model: Any = None, images: Any = None, class_index: int | str = 0, *, layer: str | int | None = None,
    concepts: int | None = None, max_crops: int = MAX_CROPS, crops_per_image: int = CROPS_PER_IMAGE,
    crop_sides: Sequence[float] = CROP_SIDES, mistakes: bool = True, preprocessing: str = "auto",
    image_size: tuple[int, int] | None = None, labels: str = "folders", class_names: Sequence[str] | None = None,
    trust: bool = False, engine: str = "local", address: str | None = None, actors: int | None = None,
    cpus_per_actor: float = 1.0, workers: int | None = None, batch_size: int = 32, seed: int = 0,
    progress: Progress | None = None,
) -> Concepts:
    """What the model sees in one class, in concepts: discovered, ranked by how much the class's
    answer depends on them, mapped, and checked for shortcuts.

    ``model``: a ``keras.Model``, a model file (path or bytes), an ``OpenModel``, or None for the
    demo; ``images``: a ``Source`` or anything ``open_source`` opens (a folder, a CSV, a ZIP;
    None: the demo digits); ``class_index``: a class number or name (the model's class names, or
    the data set's class folders); ``layer``: name or number (default: the layer feeding global
    pooling); ``concepts``: how many (default: chosen by reconstruction, ``factorise``);
    ``max_crops``, ``crops_per_image``, ``crop_sides``: the crops (``crops``); ``mistakes``: also
    read the other classes' images, for the model's false alarms; ``engine``: "local" or "ray"
    (``address``, ``actors``, ``cpus_per_actor`` as for ``actviz.summarize``); ``batch_size``:
    images per batch (the model runs in fixed chunks sized to memory, so this changes no result);
    ``seed``: the crops and the random baseline.

    >>> found = actviz.discover_concepts("xray.h5", "chest_xray/test", "pneumonia")   # doctest: +SKIP
    >>> found[1].importance, found.findings[0].words                          # doctest: +SKIP
    >>> found.maps("patient.png").shape                                        # (1, 300, 300, K)  # doctest: +SKIP
    """
    from ..safety.models import open_model

    opened = open_model(model, trust=trust, class_names=class_names)
    names = list(class_names) if class_names else opened.class_names
    source = images if isinstance(images, Source) else open_source(images, labels=labels)
    probe = opened.probe
    plan = _plan(probe, source, class_index, names, layer=layer, preprocessing=preprocessing, image_size=image_size)
    _check_crops(max_crops, crops_per_image, crop_sides)
    _check_count(concepts, plan["grid"][-1], max_crops)
    runner = Runner(engine, int(batch_size), workers, opened.model if model is opened else model, trust, names, actors, cpus_per_actor)
    runner.check()
    seconds: dict[str, float] = {}
    with ray_session(engine, address):
        mine, stages = _class_images(plan, probe, source, runner, progress, seconds, crops=(max_crops, crops_per_image), mistakes=mistakes)
        crop_rows, low = _crops(plan, probe, source, runner, stages, seconds, mine, crops=(max_crops, crops_per_image, tuple(crop_sides)), seed=seed)
        clock = time.perf_counter()
        factors = factorise(np.maximum(crop_rows["vector"], 0.0), concepts=concepts)
        seconds["factorise"] = time.perf_counter() - clock
        read = _read(plan, probe, source, runner, stages, seconds, factors, mine, mistakes=mistakes, seed=seed)
    notes = _notes(plan, source, min(low, read.lows.get("low", 0.0)), factors, mine, crop_rows)
    meta = {"model": opened.name, "data": source.describe(), "engine": engine, "seconds": seconds, "crops": len(crop_rows["key"]),
            "images_read": len(read.done), "preprocessing": plan["scaling"], "seed": int(seed)}
    return _assemble(plan, probe, source, factors, crop_rows, read, notes=notes, meta=meta, crops=(crops_per_image, tuple(crop_sides), seed))


# --- planning ---------------------------------------------------------------------------------------


def _plan(probe: Any, source: Source, class_index: Any, names: Any, *, layer: Any, preprocessing: str, image_size: Any) -> dict:
    """Everything fixed before the first pass (checked before any work)."""
    image_shape = image_shape_of(probe, image_size)
    name = layer_name(probe, layer)
    klass = choose_class(probe, source, class_index, class_names=names)
    chosen = choose_preprocessing(probe, preprocessing)
    _, takes_image = probe.head_model(name)
    return {"image_shape": image_shape, "layer": name, "class": klass, "scaling": chosen.scaling, "scaling_note": chosen.note,
            "chunk": forward_chunk(probe, name, image_shape), "head_chunk": head_chunk(probe, name, image_shape),
            "grid": map_shape(probe, name, image_shape), "takes_image": takes_image}


def image_shape_of(probe: Any, image_size: tuple[int, int] | None) -> tuple[int, int, int]:
    """(H, W, C) the images are given to the model at: its input size, or ``image_size`` (default
    ``dataset.plan.DEFAULT_SIZE``) for a model that takes any size."""
    height, width, channels = probe.input_shape
    if channels not in (1, 3):
        raise ChoiceError(f"The model expects images with {channels} colour channels; actviz feeds it greyscale (1) or colour (3) images only.")
    size = tuple(image_size or DEFAULT_SIZE)
    return int(height or size[0]), int(width or size[1]), int(channels)


def _check_crops(max_crops: int, per_image: int, sides: Sequence[float]) -> None:
    if isinstance(max_crops, bool) or not 2 <= int(max_crops) <= 100_000:
        raise ChoiceError(f"The number of crops must be between 2 and 100,000 (got {max_crops}).")
    if isinstance(per_image, bool) or not 1 <= int(per_image) <= 64:
        raise ChoiceError(f"The crops per image must be between 1 and 64 (got {per_image}).")
    if len(sides) != 2 or not 0 < float(sides[0]) <= float(sides[1]) <= 1:
        raise ChoiceError(f"The crops' sides are two shares of the image's side, 0 < smallest <= largest <= 1 (got {tuple(sides)}).")


def _check_count(count: int | None, channels: int, max_crops: int) -> None:
    """A number of concepts that the layer's channels and the crops can hold (checked before any pass)."""
    if count is not None and (isinstance(count, bool) or not 1 <= int(count) <= min(channels, max_crops)):
        raise ChoiceError(f"The number of concepts must be between 1 and {min(channels, max_crops)} here (the layer has {channels} "
                          f"channels and at most {max_crops} crops are factorised); got {count}.")


def sample(indices: np.ndarray, count: int, *, seed: int) -> np.ndarray:
    """int64 sorted: ``count`` of ``indices`` drawn by a permutation seeded by ``seed`` alone (all
    of them when there are fewer)."""
    indices = np.asarray(indices, np.int64)
    if len(indices) <= count:
        return np.sort(indices)
    order = np.random.default_rng([int(seed), 0x5A4D]).permutation(len(indices))
    return np.sort(indices[order[:count]])


# --- the passes ---------------------------------------------------------------------------------------


def _class_images(plan: dict, probe: Any, source: Source, runner: Runner, progress: Any, seconds: dict, *, crops: tuple, mistakes: bool) -> tuple[dict, Stages]:
    """The class's images (and the images the reading pass covers), planning the progress."""
    klass = plan["class"]
    max_crops, per_image = crops
    if klass.images is not None:
        mine = klass.images
        readable = np.nonzero(klass.labels >= 0)[0] if mistakes else mine
        stages = Stages(progress, min(len(mine), math.ceil(max_crops / per_image)) * per_image + len(readable))
        return {"images": mine, "read": readable, "labels": klass.labels, "labelled": True}, stages
    stages = Stages(progress, len(source))
    clock = time.perf_counter()
    task = Answers(plan["scaling"], plan["image_shape"], plan["chunk"])
    found = run_pass(task, probe, source, np.arange(len(source), dtype=np.int64), runner, stages, plan["image_shape"])
    seconds["answers"] = time.perf_counter() - clock
    mine = found.column("key", dtype=np.int64)[found.column("answer", dtype=np.int64) == klass.index]
    if len(mine) == 0:
        raise DatasetError(f"The model answers '{klass.name}' for none of the {len(source):,} images, so there are no images of that class to find concepts in.")
    labels = np.full(len(source), -1, np.int64)
    labels[mine] = klass.index
    stages.add(min(len(mine), math.ceil(max_crops / per_image)) * per_image + len(mine))
    return {"images": mine, "read": mine, "labels": labels, "labelled": False}, stages


def _crops(plan: dict, probe: Any, source: Source, runner: Runner, stages: Stages, seconds: dict, mine: dict, *, crops: tuple, seed: int) -> tuple[dict, float]:
    """The crops' rows (``Crops``) and the lowest activation seen."""
    max_crops, per_image, sides = crops
    chosen = sample(mine["images"], math.ceil(max_crops / per_image), seed=seed)
    clock = time.perf_counter()
    task = Crops(plan["scaling"], plan["image_shape"], plan["layer"], plan["chunk"], int(per_image), tuple(float(s) for s in sides), int(seed))
    found = run_pass(task, probe, source, chosen, runner, stages, plan["image_shape"])
    seconds["crops"] = time.perf_counter() - clock
    rows = {k: v[:max_crops] for k, v in found.rows.items()}  # the last image's crops may pass the cap
    if len(rows.get("key", ())) < 2:
        raise DatasetError(f"Too few of the class's images could be read to cut crops from ({len(found.done) - len(found.skipped)} read).")
    return rows, float(found.lows.get("low", 0.0))


def _read(plan: dict, probe: Any, source: Source, runner: Runner, stages: Stages, seconds: dict, factors: Factors, mine: dict, *, mistakes: bool, seed: int):
    """Every image to read, read in the concepts (``Readings``)."""
    klass = plan["class"]
    clock = time.perf_counter()
    randoms = random_directions(factors.count, factors.concepts.shape[1], seed=seed)
    task = Readings(plan["scaling"], plan["image_shape"], plan["layer"], plan["chunk"], plan["head_chunk"], klass.index,
                    factors.concepts, randoms, mine["labels"], mine["labelled"], plan["takes_image"])
    found = run_pass(task, probe, source, mine["read"], runner, stages, plan["image_shape"])
    seconds["readings"] = time.perf_counter() - clock
    if "key" not in found.rows or not (found.rows["kind"] != FALSE_ALARM).any():
        raise DatasetError(f"None of the images of '{klass.name}' could be read.")
    return found


# --- putting it together --------------------------------------------------------------------------------


def _assemble(plan: dict, probe: Any, source: Source, factors: Factors, crop_rows: dict, read: Any, *, notes: list, meta: dict, crops: tuple) -> Concepts:
    """The ``Concepts``: concepts in order of importance, the findings, the notes."""
    rows, klass = read.rows, plan["class"]
    mine = rows["kind"] != FALSE_ALARM
    order = np.argsort(-rows["drop"][mine].mean(axis=0), kind="stable")  # most important first
    per_image = {"index": rows["key"], "kind": rows["kind"], "score": rows["score"], "all": rows["all"],
                 **{k: rows[k][:, order] for k in ("drop", "random", "strength", "cell")}}
    grids = {kind: np.moveaxis(read.sums[f"maps_{kind}"][..., order] / max(int(chosen.sum()), 1), -1, 0)
             for kind, chosen in (("class", mine), ("mistakes", rows["kind"] != RIGHT))}  # mean maps (K, h, w)
    listed = _concept_list(plan, source, factors, crop_rows, per_image, mine, order, grids["class"], crops=crops)
    pixels_of = _pixel_reader(source, plan["image_shape"])
    evidence = Evidence(per_image["index"], per_image["kind"], per_image["drop"], per_image["random"], per_image["strength"], per_image["cell"],
                        np.array([c.importance for c in listed]), np.array([c.random_importance for c in listed]), grids["class"],
                        grids["mistakes"], tuple(plan["image_shape"][:2]), klass.name)
    notes = notes + [_coverage(per_image, mine, klass.name), *_unread(read)]
    return Concepts(
        class_index=klass.index, class_name=klass.name, layer=plan["layer"], image_shape=plan["image_shape"], concepts=tuple(listed),
        findings=tuple(find_shortcuts(evidence, pixels_of=pixels_of)), per_image=per_image, reconstruction=factors.error,
        chosen=factors.chosen, count=int(mine.sum()), images=tuple(source.paths), notes=tuple(notes),
        meta={**meta, "source_bytes": _held_bytes(source)}, pixels_of=pixels_of,
        reader=_map_reader(probe, plan, np.stack([c.direction for c in listed])),
    )


def _concept_list(plan: dict, source: Source, factors: Factors, crop_rows: dict, per_image: dict, mine: np.ndarray, order: np.ndarray,
                  grids: np.ndarray, *, crops: tuple) -> list[Concept]:
    """One ``Concept`` per factor, in ``order`` (``per_image``'s columns are in that order already)."""
    hw = plan["image_shape"][:2]
    listed = []
    for rank, k in enumerate(order):
        drop, random = per_image["drop"][mine], per_image["random"][mine]
        chosen = _top_crops(crop_rows, factors.coefficients[:, k], hw, crops)
        listed.append(Concept(
            number=rank + 1, importance=float(drop[:, rank].mean()), random_importance=float(random[:, rank].mean()),
            spread=float(drop[:, rank].std()), relied=float(relies(drop, random, rank).mean()), direction=factors.concepts[k],
            grid_map=grids[rank].astype(np.float32), mean_map=to_pixels(grids[rank], hw), crops=chosen,
            examples=tuple(source.paths[c.image] for c in chosen),
        ))
    return listed


def _top_crops(crop_rows: dict, amounts: np.ndarray, image_hw: tuple, crops: tuple) -> tuple:
    """The crops holding most of a concept, one per image, at most ``EXAMPLES``."""
    per_image, sides, seed = crops
    picked, seen = [], set()
    for row in np.argsort(-amounts, kind="stable"):
        image = int(crop_rows["index"][row])
        if image in seen or amounts[row] <= 0:
            continue
        seen.add(image)
        box = crop_boxes(image, image_hw, count=per_image, sides=sides, seed=seed)[int(crop_rows["crop"][row])]
        picked.append(Crop(image, tuple(int(v) for v in box), float(amounts[row])))
        if len(picked) == EXAMPLES:
            break
    return tuple(picked)


def _held_bytes(source: Source) -> int:
    """Bytes of the data set the result keeps alive to draw its pictures: an uploaded ZIP's, else 0."""
    archive = getattr(source.reader, "archive", None)
    return len(archive) if isinstance(archive, (bytes, bytearray)) else 0


def _pixel_reader(source: Source, image_shape: tuple):
    """index -> uint8 (H, W, C) as the model sees the image, or None when it cannot be read."""

    def pixels_of(index: int) -> np.ndarray | None:
        try:
            return source.pixels(int(index), image_shape)
        except (ImageError, OSError):
            return None

    return pixels_of


def _map_reader(probe: Any, plan: dict, concept_bank: np.ndarray):
    """images -> float32 (N, H, W, K): the concept maps of any images, in input pixels."""

    def read(images: Any) -> np.ndarray:
        from ..inputs.batch import to_batch
        from .maps import concept_maps

        floats = isinstance(images, np.ndarray) and images.dtype.kind == "f"  # model inputs already: never scaled again
        batch = to_batch(images, probe, preprocess_as="auto" if floats else plan["scaling"])
        if tuple(batch.inputs.shape[1:]) != tuple(plan["image_shape"]):
            raise ImageError(f"These images are {batch.inputs.shape[1]} x {batch.inputs.shape[2]}; the concepts were found at "
                             f"{plan['image_shape'][0]} x {plan['image_shape'][1]}.")
        grids = concept_maps(probe, plan["layer"], batch.inputs, concept_bank, chunk=plan["chunk"])
        return np.stack([np.stack([to_pixels(g[..., k], plan["image_shape"][:2]) for k in range(g.shape[-1])], -1) for g in grids])

    return read


def _coverage(per_image: dict, mine: np.ndarray, name: str) -> str:
    """How much of the class score the concepts account for together, in words."""
    score, gone = float(per_image["score"][mine].mean()), float(per_image["all"][mine].mean())
    return (f"The score of '{name}' is {score:.3g} on average over its images; removing every concept at once lowers it by "
            f"{gone:.3g} (a concept's importance is what removing it alone costs).")


def _unread(read: Any) -> list[str]:
    skipped = len(read.skipped)
    return [f"{skipped:,} image(s) could not be read and were left out."] if skipped else []


def _notes(plan: dict, source: Source, low: float, factors: Factors, mine: dict, crop_rows: dict) -> list[str]:
    klass = plan["class"]
    notes = [n for n in (plan["class"].note, plan["scaling_note"]) if n]
    if not mine["labelled"]:
        notes.append(f"The data set has no labels: the class's images are the {len(mine['images']):,} the model answers '{klass.name}' for.")
    crop_images = len(np.unique(crop_rows["index"]))
    notes.append(f"Concepts were found in {len(crop_rows['key']):,} crops of {crop_images:,} of the class's {len(mine['images']):,} images.")
    notes.append(factors.chosen)
    if low < 0:
        notes.append(POSITIVE_PART_NOTE)
    if source.skipped:
        notes.append(f"{len(source.skipped):,} file(s) of the data set are not images that can be read and were left out.")
    return notes

