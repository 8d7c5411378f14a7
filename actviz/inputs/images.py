"""Read an image file and turn it into what a model expects.

``open_image`` reads bytes or a path into an upright, fully decoded Pillow
image, refusing broken files and decompression bombs before they are decoded.
Only the formats in ``FORMATS`` are decoded (never EPS, which Pillow hands to
Ghostscript, nor any other format Pillow happens to know). ``fit_image``
resizes and converts colour to the model's input (scaling the pixel values is
``preprocessing``); a model that takes any size gets at least
``MIN_DYNAMIC_SIDE`` and at most ``MAX_DYNAMIC_SIDE`` pixels a side.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError

ImageSource = Union[bytes, str, Path]

#: Largest image decoded, in pixels (a 8000x6000 photo fits; a 30000x30000 bomb does not).
MAX_PIXELS = 50_000_000
#: For a model that accepts any input size, the image's longest side is capped at this.
MAX_DYNAMIC_SIDE = 512
#: For a model that accepts any input size, a smaller image's shortest side is enlarged to this.
MIN_DYNAMIC_SIDE = 32
#: Largest ratio between the long and the short side of an image.
MAX_ASPECT = 50
#: The image formats decoded (Pillow's names; MPO, the multi-picture JPEG of phones, is read as JPEG).
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
_FORMAT_WORDS = "JPEG, PNG, GIF, WebP, BMP or TIFF"

def open_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image file, upright, first frame only, as RGB or L.

    Transparency is flattened onto white; 16-bit and floating-point greyscale
    are scaled to 8 bits. The pixel count is checked from the header, before
    any pixel is decoded, so a decompression bomb costs no memory.
    """
    data = _read_bytes(source)
    if not data:
        raise ImageError("The image file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            _check_size(img.size, max_pixels)
            img.seek(0)  # animated GIF / WebP / multi-page TIFF: the first frame
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            f"This file is not an image actviz can read. Use a {_FORMAT_WORDS} file."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"The image is too large to open safely (more than {max_pixels:,} pixels)."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, struct.error, MemoryError) as exc:
        raise ImageError(f"The image file is damaged or incomplete and cannot be decoded ({_short(exc)}).") from None
    return _to_rgb_or_l(img)


def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"There is no image file at '{path}'.")
    return path.read_bytes()


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageError(
            f"The image is {width} x {height} pixels, too large to open safely "
            f"(the limit is {max_pixels:,} pixels). Use a smaller copy of it."
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(
            f"The image is {width} x {height} pixels: a strip this thin cannot be shown to the model. "
            f"Its long side may be at most {MAX_ASPECT} times its short side."
        )


def _to_rgb_or_l(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB or L, flattening transparency onto white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(img, dtype=np.float32)
        top = float(values.max()) if values.size else 0.0
        if top > 255:
            values = values * (255.0 / (65535.0 if top <= 65535 else top))
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("L", "RGB"):
        return img
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, P without transparency


def target_size(
    image_size: tuple[int, int], input_hw: tuple[int | None, int | None], *,
    max_side: int = MAX_DYNAMIC_SIDE, min_side: int = MIN_DYNAMIC_SIDE,
) -> tuple[int, int]:
    """The (height, width) an image of ``image_size`` (width, height) is resized to for a model input of ``input_hw``.

    Fixed dimensions are kept; a dynamic (None) dimension follows the image's
    own aspect ratio. When both are dynamic the longest side is capped at
    ``max_side`` and a smaller image is enlarged until its shortest side is
    ``min_side`` (a 7 x 7 image becomes 32 x 32; a 1 x 50 strip 32 x 512), so
    that a fully convolutional model never gets an image smaller than its kernels.
    """
    width, height = image_size
    want_h, want_w = input_hw
    if want_h and want_w:
        return int(want_h), int(want_w)
    if want_h:
        return int(want_h), max(min_side, round(width * want_h / height))
    if want_w:
        return max(min_side, round(height * want_w / width)), int(want_w)
    scale = min(1.0, max_side / max(width, height))
    if min(width, height) * scale < min_side:
        scale = min_side / min(width, height)
    return min(max_side, max(min_side, round(height * scale))), min(max_side, max(min_side, round(width * scale)))


def fit_image(img: Image.Image, input_shape: tuple, *, max_side: int = MAX_DYNAMIC_SIDE) -> np.ndarray:
    """The image as the model sees it: uint8 (H, W, C), C being 1 or 3 as the model expects.

    ``input_shape`` is the model's (H, W, C) without the batch axis; H and W may be None.
    """
    height, width, channels = input_shape
    if channels not in (1, 3):
        raise ImageError(
            f"The model expects images with {channels} colour channels; actviz can feed it "
            "greyscale (1 channel) or colour (3 channels) images only."
        )
    mode = "L" if channels == 1 else "RGB"
    out_h, out_w = target_size(img.size, (height, width), max_side=max_side)
    if out_h * out_w > MAX_PIXELS:
        raise ImageError(
            f"The model expects images of {out_h:,} x {out_w:,} pixels, more than actviz feeds a model "
            f"({MAX_PIXELS:,} pixels at most); such a model cannot be shown here."
        )
    fitted = img.convert(mode)
    if fitted.size != (out_w, out_h):
        fitted = fitted.resize((out_w, out_h), Image.Resampling.BILINEAR)
    pixels = np.asarray(fitted, dtype=np.uint8)
    return pixels.reshape(out_h, out_w, channels)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] + ("..." if len(text) > 160 else "")
