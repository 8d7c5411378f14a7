"""Crops of an image, the pieces concepts are discovered in (CRAFT, Fel et al., CVPR 2023: the
class's images are cut into crops, each crop is enlarged to the model's input size and passed
to the layer, and the layer's response to each crop is one row of the matrix factorised).

The crops of image ``i`` are drawn from a random generator seeded by ``(seed, i)`` alone, so an
image gets the same crops whichever batch, process or machine handles it. Each crop keeps the
image's aspect ratio (no stretching once enlarged) and its side is a share of the image's side
drawn from ``CROP_SIDES``: CRAFT cuts 224-pixel images into 64-pixel crops (0.29); slightly
larger crops are used here because medical images (and small test images) carry their details
at a coarse scale, and a crop enlarged less looks more like the parts the model saw in training.

Boxes are ``[x0, y0, x1, y1]`` in the pixels of the image as the model sees it (its input size),
``x1`` and ``y1`` one past the last pixel, like every region in this package.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Crops taken from each image (CRAFT takes a grid of about 10-16 on ImageNet images).
CROPS_PER_IMAGE = 8
#: The side of a crop, as a share of the image's side, is drawn uniformly between these.
CROP_SIDES = (0.35, 0.7)


def crop_boxes(index: int, image_hw: Sequence[int], *, count: int = CROPS_PER_IMAGE, sides: Sequence[float] = CROP_SIDES, seed: int = 0) -> np.ndarray:
    """int64 (count, 4): the crops of image ``index`` as ``[x0, y0, x1, y1]`` boxes inside an
    image of ``image_hw`` (H, W) pixels; the same for the same index, size and seed, always.

    >>> crop_boxes(3, (24, 24)).tolist() == crop_boxes(3, (24, 24)).tolist()
    True
    >>> bool(((crop_boxes(3, (24, 24))[:, 2:] <= 24) & (crop_boxes(3, (24, 24))[:, :2] >= 0)).all())
    True
    """
    height, width = int(image_hw[0]), int(image_hw[1])
    rng = np.random.default_rng([int(seed), int(index)])
    share = rng.uniform(float(sides[0]), float(sides[1]), int(count))
    box_h = np.clip(np.round(share * height), 1, height).astype(np.int64)
    box_w = np.clip(np.round(share * width), 1, width).astype(np.int64)
    y0 = np.floor(rng.random(int(count)) * (height - box_h + 1)).astype(np.int64)
    x0 = np.floor(rng.random(int(count)) * (width - box_w + 1)).astype(np.int64)
    return np.stack([x0, y0, x0 + box_w, y0 + box_h], axis=1)


def crop_pixels(pixels: np.ndarray, box: Sequence[int], out_hw: Sequence[int]) -> np.ndarray:
    """One crop enlarged to ``out_hw``: uint8 (H, W, C) image, box ``[x0, y0, x1, y1]`` ->
    uint8 (out_h, out_w, C), bilinear (Pillow, as images are fitted to the model's input)."""
    from PIL import Image

    x0, y0, x1, y1 = (int(v) for v in box)
    part = np.ascontiguousarray(pixels[y0:y1, x0:x1])
    channels = part.shape[-1]
    image = Image.fromarray(part[:, :, 0] if channels == 1 else part)
    resized = image.resize((int(out_hw[1]), int(out_hw[0])), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8).reshape(int(out_hw[0]), int(out_hw[1]), channels)


def crop_batch(pixels: Sequence[np.ndarray], pairs: Sequence[tuple[int, np.ndarray]]) -> np.ndarray:
    """uint8 (n, H, W, C): for each (position in ``pixels``, box), that image's crop enlarged to
    its own size (the model's input size)."""
    return np.stack([crop_pixels(pixels[i], box, pixels[i].shape[:2]) for i, box in pairs])
