"""Images in any reasonable form, made into one batch for a model.

What the library's functions accept as ``images``, and exactly how each is treated:

- a file path (``str`` / ``Path``), file bytes, or a Pillow image: decoded safely
  (``images.open_image``), converted to grey or RGB as the model expects,
  resized to its input, then scaled by the preprocessing (``"auto"``: the
  notebook's pixels / 255 unless the model scales its input itself);
- a numpy array of **integers** (uint8, or any integer type with values 0..255):
  pixels, (H, W) / (H, W, C) for one image or (N, H, W, C) for a batch; resized
  and scaled exactly like a file;
- a numpy array of **floats**: the model's input *as it is*, already scaled
  (never divided by 255 again); it must have the model's size and channels,
  (H, W, C) or (N, H, W, C). Asking for a preprocessing other than "auto" or
  "none" with floats is refused: pass the pixels as uint8 to have them scaled;
- a list or tuple of any of these: one batch, in order.

A 3-D array is one image (H, W, C); a batch of grey images is (N, H, W, 1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ChoiceError, ImageError
from .images import fit_image, open_image
from .preprocessing import Preprocessing, choose_preprocessing, preprocess


@dataclass(frozen=True)
class Batch:
    """Images made ready for a model.

    ``inputs``: float32 (N, H, W, C), what the model receives; ``pixels``:
    uint8 (N, H, W, C) as the model sees them (None when floats were given);
    ``preprocessing``: what scaling was applied and why; ``names``: a label per image.
    """

    inputs: np.ndarray
    pixels: np.ndarray | None
    preprocessing: Preprocessing
    names: tuple


def to_batch(images: Any, probe: Any, *, preprocess_as: str = "auto") -> Batch:
    """``images`` in any form above -> a ``Batch`` for ``probe``'s model."""
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ImageError("No images were given.")
    chosen = choose_preprocessing(probe, preprocess_as)
    pixels, inputs, names = [], [], []
    for item in items:
        for name, kind, array in _arrays(item, probe):
            (inputs if kind == "input" else pixels).append(array)
            names.append(name or f"image {len(names)}")  # unnamed (arrays, bytes): by position in the batch
    if pixels and inputs:
        raise ImageError("Give either pixel images (files, Pillow images, integer arrays) or float model inputs, not both in one call.")
    if inputs:
        if preprocess_as not in ("auto", "none"):
            raise ChoiceError(
                f"Float arrays are taken as the model's input, already scaled; preprocess='{preprocess_as}' would scale "
                "them again. Pass the pixels as uint8 (0..255) to have actviz scale them, or leave preprocess='auto'."
            )
        batch = _stack(inputs, probe).astype(np.float32)
        _warn_if_pixels(batch, chosen)
        return Batch(batch, None, Preprocessing("none", "Preprocessing: none (float arrays are the model's input as given)."), tuple(names))
    stacked = _stack(pixels, probe)
    return Batch(preprocess(stacked, chosen.scaling), stacked, chosen, tuple(names))


def _arrays(item: Any, probe: Any):
    """Yield (file name or None, "pixels" | "input", array (H, W, C)) for one item, which may hold a batch."""
    from PIL import Image

    if isinstance(item, (str, Path)):
        yield Path(item).name, "pixels", fit_image(open_image(item), probe.input_shape)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        yield None, "pixels", fit_image(open_image(bytes(item)), probe.input_shape)
    elif isinstance(item, Image.Image):
        yield None, "pixels", fit_image(_upright(item), probe.input_shape)
    elif isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        array = np.asarray(item)
        for one in (array if array.ndim == 4 else [array]):
            yield from _one_array(one, probe)
    else:
        raise ImageError(
            f"An image was given as {type(item).__name__}; actviz takes file paths, bytes, Pillow images or numpy arrays."
        )


def _one_array(array: np.ndarray, probe: Any):
    from PIL import Image

    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise ImageError(f"An image array must be (H, W), (H, W, C) or a batch (N, H, W, C); got shape {array.shape}.")
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ImageError(f"Integer images must hold pixel values 0..255; this one holds {array.min()}..{array.max()}.")
        pixels = array.astype(np.uint8)
        if pixels.shape[-1] not in (1, 3, 4):
            raise ImageError(f"An image must have 1, 3 or 4 colour channels (grey, RGB, RGBA); this one has {pixels.shape[-1]}.")
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
        image = Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode=mode)
        yield None, "pixels", fit_image(image.convert("RGB") if mode == "RGBA" else image, probe.input_shape)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("The float image holds NaN or infinite values.")
        yield None, "input", _check_input_shape(array, probe)
    else:
        raise ImageError(f"Image arrays must hold integers (pixels) or floats (model input), not {array.dtype}.")


def _check_input_shape(array: np.ndarray, probe: Any) -> np.ndarray:
    want = probe.input_shape
    for have, need, what in zip(array.shape, want, ("height", "width", "channels")):
        if need is not None and have != need:
            raise ImageError(
                f"A float array is passed to the model as it is, so it must match the model's input "
                f"{' x '.join('any' if d is None else str(d) for d in want)}; its {what} is {have}, not {need}. "
                "Pass uint8 pixels to have actviz resize and scale them."
            )
    return array


def _stack(arrays: Sequence[np.ndarray], probe: Any) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ImageError(
            "The images have different sizes "
            f"({', '.join(sorted('x'.join(map(str, s[:2])) for s in shapes))}) and this model takes any size, so they "
            "cannot go through it as one batch. Pass them one at a time, or resize them to one size first."
        )
    return np.stack(arrays)


def _upright(image: Any) -> Any:
    """A Pillow image turned upright by its EXIF orientation, first frame, as RGB or L (as files are read)."""
    from PIL import ImageOps

    from .images import _to_rgb_or_l

    image.seek(0)
    return _to_rgb_or_l(ImageOps.exif_transpose(image))


def _warn_if_pixels(batch: np.ndarray, chosen: Preprocessing) -> None:
    """A float batch up to 255 for a model that expects 0..1 is probably raw pixels: say so once."""
    if chosen.scaling == "rescale" and batch.size and float(batch.max()) > 1.5:
        warnings.warn(
            f"The float images go up to {float(batch.max()):.4g}, but this model expects inputs scaled to about 0..1 "
            "(pixels / 255). If these are raw pixel values, pass them as uint8 so actviz scales them.",
            UserWarning, stacklevel=4,
        )
