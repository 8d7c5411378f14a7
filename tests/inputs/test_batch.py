"""``to_batch``, the one path from an image to a model input: an image opened first (as the command
line opens it, to check it before the model loads) gives exactly what its file gives, and both
are what Pillow and numpy compute by hand."""

import io

import numpy as np
from PIL import Image

from actviz.core.probe import Probe
from actviz.inputs.batch import to_batch
from actviz.inputs.images import open_image


def _rotated_jpeg(tmp_path):
    """A 20 x 12 colour JPEG whose EXIF says "turn 90 degrees clockwise to view" (upright: 12 x 20)."""
    x = np.linspace(0, 255, 20, dtype=np.uint8)[None, :].repeat(12, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    Image.fromarray(np.stack([x, x[::-1, ::-1], np.full_like(x, 90)], axis=-1)).save(path, format="JPEG", exif=exif)
    return path


def test_to_batch_of_an_opened_image_equals_its_file_and_plain_pillow(flat_model, tmp_path):
    probe = Probe(flat_model)  # 8 x 8 x 3
    path = _rotated_jpeg(tmp_path)
    upright = Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    want = np.asarray(upright.resize((8, 8), Image.Resampling.BILINEAR))[np.newaxis]
    opened = open_image(path)
    kept = np.asarray(opened).copy()
    from_opened = to_batch(opened, probe)
    from_file = to_batch(str(path), probe)
    np.testing.assert_array_equal(from_opened.pixels, want)
    np.testing.assert_array_equal(from_file.pixels, want)
    np.testing.assert_array_equal(from_opened.inputs, want.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(from_file.inputs, from_opened.inputs)
    assert from_opened.preprocessing == from_file.preprocessing and from_file.names == ("turned.jpg",)
    np.testing.assert_array_equal(np.asarray(opened), kept)  # the opened image is left as it was


def test_to_batch_of_two_opened_images_is_the_two_single_batches(flat_model, tmp_path):
    probe = Probe(flat_model)
    colours = np.random.default_rng(3).integers(0, 256, (2, 10, 14, 3), dtype=np.uint8)
    opened = [open_image(_png(colour)) for colour in colours]
    both = to_batch(opened, probe, preprocess_as="caffe")
    singles = [to_batch(image, probe, preprocess_as="caffe") for image in opened]
    np.testing.assert_array_equal(both.inputs, np.concatenate([single.inputs for single in singles]))
    # caffe, by hand: colours in BGR order, ImageNet's mean subtracted
    bgr_mean = np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_allclose(both.inputs, both.pixels[..., ::-1].astype(np.float32) - bgr_mean, rtol=0, atol=1e-4)
    assert "chosen by you" in both.preprocessing.note


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
